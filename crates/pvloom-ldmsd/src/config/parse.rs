//! From a [`RawCommand`] to a typed [`Cmd`]: each verb's attributes, required and optional,
//! and their values.

use super::{Cmd, ConfigErrorKind as K, MatchSel, Owner, PluginConfig, PrdcrType, Push, RawCommand, time};

/// The attributes of one command, taken one by one; whatever is left is an error.
struct Take<'a> {
    verb: &'a str,
    attrs: Vec<(&'a str, Option<&'a str>)>,
}

fn bad(attr: &str, value: &str, why: impl Into<String>) -> K {
    K::BadValue { attr: attr.into(), value: value.into(), why: why.into() }
}

impl<'a> Take<'a> {
    fn new(raw: &'a RawCommand) -> Result<Take<'a>, K> {
        let mut attrs: Vec<(&str, Option<&str>)> = Vec::new();
        for a in &raw.attrs {
            if attrs.iter().any(|(n, _)| *n == a.name) {
                return Err(K::Duplicate(a.name.clone()));
            }
            attrs.push((&a.name, a.value.as_deref()));
        }
        Ok(Take { verb: &raw.verb, attrs })
    }

    fn opt(&mut self, name: &str) -> Result<Option<String>, K> {
        match self.attrs.iter().position(|(n, _)| *n == name) {
            None => Ok(None),
            Some(i) => match self.attrs.remove(i).1 {
                Some(v) => Ok(Some(v.to_string())),
                None => Err(bad(name, "", "a value is needed (`name=value`)")),
            },
        }
    }

    fn req(&mut self, name: &str) -> Result<String, K> {
        self.opt(name)?.ok_or_else(|| K::Missing { verb: self.verb.into(), attr: name.into() })
    }

    fn time(&mut self, name: &str) -> Result<Option<i64>, K> {
        self.opt(name)?
            .map(|v| time::parse_us(&v).ok_or_else(|| bad(name, &v, "not a time (e.g. 1000000, 1s, 100ms)")))
            .transpose()
    }

    fn port(&mut self) -> Result<u16, K> {
        let v = self.req("port")?;
        v.parse().map_err(|_| bad("port", &v, "not a port number"))
    }

    fn perm(&mut self) -> Result<Option<u32>, K> {
        self.opt("perm")?.map(|v| perm(&v)).transpose()
    }

    fn boolean(&mut self, name: &str) -> Result<Option<bool>, K> {
        self.opt(name)?
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(bad(name, &v, "expected true or false")),
            })
            .transpose()
    }

    fn done(self) -> Result<(), K> {
        match self.attrs.first() {
            Some((n, _)) => Err(K::UnknownAttr { verb: self.verb.into(), attr: n.to_string() }),
            None => Ok(()),
        }
    }
}

/// `perm=` as `base_auth_parse` reads it: octal, non-zero, at most 0777.
fn perm(v: &str) -> Result<u32, K> {
    match u32::from_str_radix(v, 8) {
        Ok(p) if p != 0 && p <= 0o777 => Ok(p),
        _ => Err(bad("perm", v, "a non-zero octal number <= 777 is needed")),
    }
}

/// `uid=` / `gid=`: a name if it starts with a letter, else a number (`strtol` base 0).
fn owner(attr: &str, v: &str) -> Result<Owner, K> {
    if v.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Ok(Owner::Name(v.to_string()));
    }
    let n = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else if v.len() > 1 && v.starts_with('0') {
        u32::from_str_radix(&v[1..], 8)
    } else {
        v.parse()
    };
    n.map(Owner::Id).map_err(|_| bad(attr, v, "not a user/group id or name"))
}

/// `component_id=` as sampler_base reads it: non-digits before the number are skipped,
/// then the leading digits are taken (`node12` is 12). No digits at all: not set.
fn component_id(v: &str) -> Result<Option<u64>, K> {
    let digits: String = v.chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return Ok(None);
    }
    digits.parse().map(Some).map_err(|_| bad("component_id", v, "too large"))
}

/// A size as `ovis_get_mem_size` reads it: a number and an optional b/k/m/g/t suffix
/// (powers of 1024).
fn mem_size(v: &str) -> Result<u64, K> {
    let n = v.bytes().take_while(u8::is_ascii_digit).count();
    let num: u64 = v[..n].parse().map_err(|_| bad("size", v, "not a size"))?;
    let mul: u64 = match v[n..].trim_start().chars().next().map(|c| c.to_ascii_lowercase()) {
        None | Some('b') => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        _ => return Err(bad("size", v, "unknown unit")),
    };
    num.checked_mul(mul).ok_or_else(|| bad("size", v, "too large"))
}

/// The channel of `prdcr_subscribe` / `prdcr_unsubscribe`: `message_channel=` (or its
/// other name `message_tag=`), or the older `stream=`; exactly one.
fn channel(t: &mut Take<'_>) -> Result<String, K> {
    let mut given = Vec::new();
    for name in ["message_channel", "message_tag", "stream"] {
        if let Some(v) = t.opt(name)? {
            given.push((name, v));
        }
    }
    match given.len() {
        1 => Ok(given.pop().expect("one").1),
        0 => Err(K::Missing { verb: t.verb.into(), attr: "message_channel".into() }),
        _ => Err(bad(given[1].0, &given[1].1, format!("only one of message_channel and stream (got {}=)", given[0].0))),
    }
}

/// `start` checks the offset as `ldmsd_sampler_start` does.
fn check_offset(attr: &str, interval: i64, offset: Option<i64>) -> Result<(), K> {
    if let Some(o) = offset
        && (interval < 10 || interval < o.abs() * 2)
    {
        return Err(bad(attr, &o.to_string(), format!("|offset| must be at most half the interval ({interval} us)")));
    }
    Ok(())
}

fn plugin_config(raw: &RawCommand) -> Result<PluginConfig, K> {
    let mut t = Take::new(raw)?;
    let mut c = PluginConfig { name: t.req("name")?, ..Default::default() };
    c.producer = t.opt("producer")?;
    c.instance = t.opt("instance")?;
    c.component_id = t.opt("component_id")?.map(|v| component_id(&v)).transpose()?.flatten();
    c.schema = t.opt("schema")?.filter(|s| !s.is_empty());
    c.uid = t.opt("uid")?.map(|v| owner("uid", &v)).transpose()?;
    c.gid = t.opt("gid")?.map(|v| owner("gid", &v)).transpose()?;
    c.perm = t.perm()?;
    c.job_set = t.opt("job_set")?;
    for (n, v) in t.attrs {
        match v {
            Some(v) => {
                c.attrs.insert(n.to_string(), v.to_string());
            }
            None => c.keywords.push(n.to_string()),
        }
    }
    Ok(c)
}

/// Build the typed command.
pub(crate) fn command(raw: &RawCommand) -> Result<Cmd, K> {
    if raw.verb == "config" {
        return Ok(Cmd::Config(plugin_config(raw)?));
    }
    if raw.verb == "env" {
        let mut vars = Vec::new();
        for a in &raw.attrs {
            let v = a.value.clone().ok_or_else(|| bad(&a.name, "", "env needs NAME=value"))?;
            vars.push((a.name.clone(), v));
        }
        return Ok(Cmd::Env { vars });
    }
    let mut t = Take::new(raw)?;
    let cmd = match raw.verb.as_str() {
        "load" => {
            let name = t.req("name")?;
            let plugin = t.opt("plugin")?.unwrap_or_else(|| name.clone());
            Cmd::Load { name, plugin }
        }
        "start" => {
            let name = t.req("name")?;
            let interval_us =
                t.time("interval")?.ok_or_else(|| K::Missing { verb: "start".into(), attr: "interval".into() })?;
            let offset_us = t.time("offset")?;
            check_offset("offset", interval_us, offset_us)?;
            Cmd::Start { name, interval_us, offset_us }
        }
        "stop" => Cmd::Stop { name: t.req("name")? },
        "term" => Cmd::Term { name: t.req("name")? },
        "listen" => {
            let xprt = t.req("xprt")?;
            let port = t.port()?;
            Cmd::Listen { xprt, port, host: t.opt("host")?, auth: t.opt("auth")? }
        }
        "msg_enable" => Cmd::MsgEnable,
        "msg_disable" => Cmd::MsgDisable,
        "prdcr_subscribe" => {
            let regex = t.req("regex")?;
            let channel = channel(&mut t)?;
            let rx_rate = match t.opt("rx_rate")? {
                None => -1,
                Some(v) => v.trim().parse().map_err(|_| bad("rx_rate", &v, "bytes per second, or -1"))?,
            };
            Cmd::PrdcrSubscribe { regex, channel, rx_rate }
        }
        "prdcr_unsubscribe" => {
            let regex = t.req("regex")?;
            Cmd::PrdcrUnsubscribe { regex, channel: channel(&mut t)? }
        }
        "set_memory" => {
            let v = t.req("size")?;
            Cmd::SetMemory { bytes: mem_size(&v)? }
        }
        "prdcr_add" => {
            let name = t.req("name")?;
            let host = t.req("host")?;
            let port = t.port()?;
            let xprt = t.req("xprt")?;
            let tyv = t.req("type")?;
            let ty = match tyv.as_str() {
                "active" => PrdcrType::Active,
                "passive" => PrdcrType::Passive,
                _ => return Err(bad("type", &tyv, "pvloom supports active and passive")),
            };
            let reconnect_us = match (t.time("reconnect")?, t.time("interval")?) {
                (Some(r), _) | (None, Some(r)) => r,
                (None, None) => return Err(K::Missing { verb: "prdcr_add".into(), attr: "reconnect".into() }),
            };
            if reconnect_us <= 0 {
                return Err(bad("reconnect", &reconnect_us.to_string(), "must be positive"));
            }
            Cmd::PrdcrAdd { name, host, port, xprt, ty, reconnect_us, auth: t.opt("auth")?, perm: t.perm()? }
        }
        "prdcr_start" => {
            let name = t.req("name")?;
            let r = t.time("reconnect")?;
            let reconnect_us = r.or(t.time("interval")?);
            Cmd::PrdcrStart { name, reconnect_us }
        }
        "prdcr_start_regex" => {
            let regex = t.req("regex")?;
            let r = t.time("reconnect")?;
            let reconnect_us = r.or(t.time("interval")?);
            Cmd::PrdcrStartRegex { regex, reconnect_us }
        }
        "prdcr_stop" => Cmd::PrdcrStop { name: t.req("name")? },
        "prdcr_stop_regex" => Cmd::PrdcrStopRegex { regex: t.req("regex")? },
        "prdcr_del" => Cmd::PrdcrDel { name: t.req("name")? },
        "updtr_add" => {
            let name = t.req("name")?;
            let interval_us = t.time("interval")?;
            let offset_us = t.time("offset")?;
            if let Some(i) = interval_us {
                check_offset("offset", i, offset_us)?;
            }
            let push = match t.opt("push")? {
                None => Push::Off,
                Some(p) => match p.to_ascii_lowercase().as_str() {
                    "onchange" => Push::OnChange,
                    "true" | "yes" => Push::Always,
                    _ => return Err(bad("push", &p, "expected onchange, true or yes")),
                },
            };
            let auto_interval = t.boolean("auto_interval")?.unwrap_or(false);
            if auto_interval && push != Push::Off {
                return Err(bad("auto_interval", "true", "auto_interval and push are exclusive"));
            }
            Cmd::UpdtrAdd { name, interval_us, offset_us, push, auto_interval, perm: t.perm()? }
        }
        "updtr_prdcr_add" => Cmd::UpdtrPrdcrAdd { name: t.req("name")?, regex: t.req("regex")? },
        "updtr_prdcr_del" => Cmd::UpdtrPrdcrDel { name: t.req("name")?, regex: t.req("regex")? },
        "updtr_match_add" => {
            let name = t.req("name")?;
            let regex = t.req("regex")?;
            let sel = match t.opt("match")?.as_deref() {
                None | Some("inst") => MatchSel::Inst,
                Some("schema") => MatchSel::Schema,
                Some(m) => return Err(bad("match", m, "expected inst or schema")),
            };
            Cmd::UpdtrMatchAdd { name, regex, sel }
        }
        "updtr_start" => Cmd::UpdtrStart {
            name: t.req("name")?,
            interval_us: t.time("interval")?,
            offset_us: t.time("offset")?,
            auto_interval: t.boolean("auto_interval")?,
        },
        "updtr_stop" => Cmd::UpdtrStop { name: t.req("name")? },
        "updtr_del" => Cmd::UpdtrDel { name: t.req("name")? },
        "strgp_add" => {
            let name = t.req("name")?;
            let plugin = t.req("plugin")?;
            let container = t.req("container")?;
            let schema = t.opt("schema")?;
            let regex = t.opt("regex")?;
            if schema.is_none() && regex.is_none() {
                return Err(K::Missing { verb: "strgp_add".into(), attr: "schema".into() });
            }
            Cmd::StrgpAdd { name, plugin, container, schema, regex, flush_us: t.time("flush")?, perm: t.perm()? }
        }
        "strgp_prdcr_add" => Cmd::StrgpPrdcrAdd { name: t.req("name")?, regex: t.req("regex")? },
        "strgp_metric_add" => Cmd::StrgpMetricAdd { name: t.req("name")?, metric: t.req("metric")? },
        "strgp_start" => Cmd::StrgpStart { name: t.req("name")? },
        "strgp_stop" => Cmd::StrgpStop { name: t.req("name")? },
        "strgp_del" => Cmd::StrgpDel { name: t.req("name")? },
        v => return Err(K::UnknownVerb(v.to_string())),
    };
    t.done()?;
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_readers() {
        assert_eq!(perm("440"), Ok(0o440));
        assert!(perm("0").is_err() && perm("1000").is_err() && perm("9").is_err());
        assert_eq!(component_id("node12x3"), Ok(Some(12)));
        assert_eq!(component_id("none"), Ok(None));
        assert_eq!(owner("uid", "0x10"), Ok(Owner::Id(16)));
        assert_eq!(owner("uid", "010"), Ok(Owner::Id(8)));
        assert_eq!(owner("uid", "root"), Ok(Owner::Name("root".into())));
        assert_eq!(mem_size("512M"), Ok(512 << 20));
        assert_eq!(mem_size("4096"), Ok(4096));
    }

    fn cmd(line: &str) -> Result<Cmd, K> {
        let raw = super::super::lex::split(1, line, &|_| None)?;
        command(&raw)
    }

    #[test]
    fn message_service_commands() {
        assert_eq!(cmd("msg_disable"), Ok(Cmd::MsgDisable));
        let sub = |channel: &str, rx_rate| Cmd::PrdcrSubscribe { regex: ".*".into(), channel: channel.into(), rx_rate };
        assert_eq!(cmd("prdcr_subscribe regex=.* message_channel=foo"), Ok(sub("foo", -1)));
        assert_eq!(cmd("prdcr_subscribe regex=.* message_tag=a.* rx_rate=1000"), Ok(sub("a.*", 1000)));
        assert_eq!(cmd("prdcr_subscribe regex=.* stream=old"), Ok(sub("old", -1)));
        assert!(matches!(cmd("prdcr_subscribe regex=.*"), Err(K::Missing { .. })));
        assert!(matches!(cmd("prdcr_subscribe regex=.* stream=a message_channel=b"), Err(K::BadValue { .. })));
        assert!(matches!(cmd("prdcr_subscribe message_channel=b"), Err(K::Missing { .. })));
        assert!(matches!(cmd("prdcr_subscribe regex=x message_channel=b rx_rate=fast"), Err(K::BadValue { .. })));
        assert_eq!(
            cmd("prdcr_unsubscribe regex=^p$ message_channel=foo"),
            Ok(Cmd::PrdcrUnsubscribe { regex: "^p$".into(), channel: "foo".into() })
        );
    }
}
