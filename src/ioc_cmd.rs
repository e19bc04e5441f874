//! `pvloom ioc`: a soft IOC taking EPICS base softIoc's command line
//! (`[-D DBD] [-m MACROS] [-a FILE.acf] [-x PREFIX] [-d FILE.db]... [-S] [st.cmd]`)
//! and pvloom's own (`FILE.db... [-m k=v,...] [--access FILE] [--seconds N]`).
//!
//! softIoc's options act in order, as its getopt loop does: `-m` replaces the macros
//! for the `-d` and `-a` after it, `-d` and `-x` load at once. A script then runs
//! (iocsh, `pvloom_ca::server::iocsh`); serving starts at its `iocInit`, or after it
//! when records were loaded and it never called `iocInit`. Database files named as
//! plain arguments (`.db`, `.vdb`, `.template`) keep pvloom's meaning: every `-m`
//! given, joined, applies to each of them.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pvloom_ca::server::AccessRules;
use pvloom_ca::server::iocsh::Iocsh;

const USAGE: &str = "\
Usage: pvloom ioc [-D softIoc.dbd] [-h] [-S] [-s] [-v] [-a ascf]
                  [-m macro=value,macro2=value2] [-d file.db]
                  [-x prefix] [st.cmd]
       pvloom ioc FILE.db... [-m macro=value,...] [--access FILE] [--seconds N]

    -D <dbd>  Accepted for softIoc's sake and ignored: pvloom's record types are built in.
    -h        Print this message and exit.
    -S        No shell on stdin (without -S: commands from a terminal, with a prompt, or from
              a pipe; the end of a piped stdin leaves the IOC running).
    -s        Accepted and ignored (historical).
    -v        Accepted and ignored (startup steps are logged with -v before `ioc`).
    -a <acf>  Access security file, read at iocInit with the macros of the -m before it.
    -m <MAC>=<value>,...  Macros for the following -d and -a (each -m replaces the last).
    -d <db>   Load records from file (dbLoadRecords) with the current -m macros.
    -x <prefix>  Load softIocExit.db: records \"<prefix>:exit\" (put to it to exit: status 0
              when its A is 0, else 1) and \"<prefix>:BaseVersion\".
    st.cmd    An iocsh startup script (epicsEnvSet, dbLoadRecords, dbLoadTemplate, iocInit,
              dbl, dbpr, dbpf, dbgf, cd, < include, ...), run after the -d files loaded.
    FILE.db   pvloom's form: database files, each loaded with every -m given (joined).
    --access <file>  An .acf file or pattern rules (`PATTERN NONE|READ|WRITE [host=..] [user=..]`).
    --seconds <N>    Serve for N seconds, then exit (no interactive shell).
";

/// Options of `pvloom ioc`: softIoc's, which act in order, so they are read here rather
/// than by clap (see the module documentation and `pvloom ioc -h`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct IocArgs {
    /// softIoc's options and pvloom's (`pvloom ioc -h` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// One softIoc option, in command-line order.
#[derive(Debug, PartialEq)]
enum Step {
    Macros(String),
    Db(String),
    Acf(String),
    Exit(String),
}

#[derive(Debug, Default, PartialEq)]
struct Options {
    steps: Vec<Step>,
    /// pvloom's plain database arguments.
    files: Vec<String>,
    /// Every -m, for the plain database arguments.
    all_macros: Vec<String>,
    script: Option<String>,
    access: Option<String>,
    seconds: Option<f64>,
    no_shell: bool,
    help: bool,
}

fn is_database(arg: &str) -> bool {
    [".db", ".vdb", ".template"].iter().any(|ext| arg.ends_with(ext))
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value_of = |name: &str, inline: Option<&str>| -> anyhow::Result<String> {
            match inline {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => it.next().cloned().with_context(|| format!("option {name} needs a value")),
            }
        };
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match name {
                "" => {
                    o.files.extend(it.by_ref().cloned());
                    break;
                }
                "help" => o.help = true,
                "access" => o.access = Some(value_of("--access", inline)?),
                "macros" => {
                    let m = value_of("--macros", inline)?;
                    o.all_macros.push(m.clone());
                    o.steps.push(Step::Macros(m));
                }
                "seconds" => {
                    let s = value_of("--seconds", inline)?;
                    o.seconds = Some(s.parse().with_context(|| format!("--seconds {s:?}: not a number"))?);
                }
                other => bail!("unknown option --{other} (see pvloom ioc -h)"),
            }
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            if is_database(arg) {
                o.files.push(arg.clone());
            } else if o.script.is_none() {
                o.script = Some(arg.clone());
            } else {
                // softIoc ignores positional arguments after the script.
                tracing::warn!("ignoring extra argument {arg:?} after the script");
            }
            continue;
        };
        // getopt's clusters: `-Sv`, `-mP=X:`, `-m P=X:`.
        for (i, flag) in cluster.char_indices() {
            let rest = &cluster[i + flag.len_utf8()..];
            match flag {
                'S' => o.no_shell = true,
                's' | 'v' => {}
                'h' => o.help = true,
                'a' | 'D' | 'd' | 'm' | 'x' => {
                    let value = value_of(&format!("-{flag}"), Some(rest))?;
                    match flag {
                        'a' => o.steps.push(Step::Acf(value)),
                        'd' => o.steps.push(Step::Db(value)),
                        'x' => o.steps.push(Step::Exit(value)),
                        'm' => {
                            o.all_macros.push(value.clone());
                            o.steps.push(Step::Macros(value));
                        }
                        _ => tracing::info!("-D {value}: record types are built in, not loaded from a .dbd"),
                    }
                    break;
                }
                other => bail!("Unknown argument: -{other} (see pvloom ioc -h)"),
            }
        }
    }
    Ok(o)
}

pub fn run(args: &IocArgs) -> anyhow::Result<()> {
    let o = parse(&args.args)?;
    if o.help {
        print!("{USAGE}");
        return Ok(());
    }
    let mut sh = Iocsh::new();
    let (stop_tx, stop_rx) = mpsc::channel::<i32>();
    let exit_tx = std::sync::Mutex::new(stop_tx.clone());
    sh.set_exit_handler(Arc::new(move |code| {
        let _ = exit_tx.lock().map(|tx| tx.send(code));
    }));
    let mut loaded = false;
    let mut macros = String::new();
    for step in &o.steps {
        match step {
            Step::Macros(m) => macros = m.clone(),
            Step::Db(file) => {
                sh.load_records(file, &macros).with_context(|| format!("Failed to load: {file}"))?;
                loaded = true;
            }
            Step::Exit(prefix) => {
                sh.load_exit_records(prefix).with_context(|| format!("-x {prefix}"))?;
                loaded = true;
            }
            Step::Acf(file) => {
                if !macros.is_empty() {
                    sh.set_access_substitutions(&macros);
                }
                sh.set_access_file(file);
            }
        }
    }
    let joined = o.all_macros.join(",");
    for file in &o.files {
        sh.load_records(file, &joined).map_err(|e| anyhow::anyhow!("{e}"))?;
        loaded = true;
    }
    if let Some(path) = &o.access {
        // An EPICS .acf file or pattern rules, told apart by what the file holds.
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        sh.set_access_rules(AccessRules::from_file_text(&text).with_context(|| format!("access rules {path}"))?);
    }
    if let Some(script) = &o.script {
        sh.run_file(script).with_context(|| format!("Error in {script}"))?;
    }
    if !sh.is_initialized() {
        if !loaded && sh.records() == 0 {
            eprint!("{USAGE}");
            bail!("Nothing to do!");
        }
        sh.init().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    std::thread::Builder::new()
        .name("pvloom-ioc-signals".into())
        .spawn({
            let tx = stop_tx.clone();
            let mut signals =
                signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
                    .context("installing signal handlers")?;
            move || {
                if signals.forever().next().is_some() {
                    let _ = tx.send(0);
                }
            }
        })
        .context("starting the signal thread")?;
    // As softIoc, the shell reads stdin after the script, a terminal (with a prompt) or a
    // pipe (commands fed by a supervisor or a test). Unlike softIoc, the end of a piped
    // or empty stdin does not stop the IOC: only `exit`, a signal or --seconds do.
    if !o.no_shell && o.seconds.is_none() {
        let tty = std::io::stdin().is_terminal();
        let tx = stop_tx.clone();
        std::thread::Builder::new()
            .name("pvloom-iocsh".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let exited = sh.run_interactive(&mut stdin.lock(), tty);
                if exited || tty {
                    let _ = tx.send(0);
                } else {
                    // The shell owns the IOC: keep it (and its server) until the process ends.
                    loop {
                        std::thread::park();
                    }
                }
            })
            .context("starting the shell")?;
        let code = stop_rx.recv().unwrap_or(0);
        std::process::exit(code);
    }
    let code = match o.seconds {
        Some(seconds) => {
            let duration = Duration::try_from_secs_f64(seconds.max(0.0))
                .map_err(|_| anyhow::anyhow!("--seconds {seconds}: not a usable duration"))?;
            stop_rx.recv_timeout(duration).unwrap_or(0)
        }
        None => stop_rx.recv().unwrap_or(0),
    };
    drop(sh);
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn softioc_options_keep_their_order() {
        let o = parse(&args("-D x.dbd -m P=A: -d a.db -mP=B: -d b.db -a s.acf -x IOC1 -Sv st.cmd extra")).unwrap();
        assert_eq!(
            o.steps,
            vec![
                Step::Macros("P=A:".into()),
                Step::Db("a.db".into()),
                Step::Macros("P=B:".into()),
                Step::Db("b.db".into()),
                Step::Acf("s.acf".into()),
                Step::Exit("IOC1".into()),
            ]
        );
        assert!(o.no_shell);
        assert_eq!(o.script.as_deref(), Some("st.cmd"));
        assert!(o.files.is_empty());
    }

    #[test]
    fn pvloom_options_still_work() {
        let o = parse(&args("a.db b.template -m P=X: --access=r.rules --seconds 2 -m R=1")).unwrap();
        assert_eq!(o.files, vec!["a.db", "b.template"]);
        assert_eq!(o.all_macros.join(","), "P=X:,R=1");
        assert_eq!((o.access.as_deref(), o.seconds), (Some("r.rules"), Some(2.0)));
        assert!(parse(&args("-q")).is_err());
        assert!(parse(&args("-d")).is_err());
        assert!(parse(&args("--seconds x")).is_err());
    }
}
