//! pvloom's LDMS daemon (`pvloom ldmsd`): the pieces that make it an `ldmsd`.
//!
//! - [`config`]: ldmsd's configuration language (the subset pvloom runs), parsed into
//!   commands with file and line, so that an unsupported line is a clear error.
//! - [`sampler`]: samplers that fill sets from `/proc` (meminfo, vmstat, loadavg, procstat,
//!   procnetdev2), the configuration-driven `test_sampler` and the example samplers
//!   (`array_example`, `list_sampler`, `record_sampler`), scheduled by interval and offset.
//! - [`store_csv`]: ldmsd's `store_csv` file layout.
//! - [`daemon`]: the running daemon: commands applied in order, the set server, the
//!   sampler thread, aggregation (producers, updaters, storage policies) and the message
//!   service (one bus per daemon).
//!
//! The commands it runs, as ldmsd's `ldmsd_request.c` takes them:
//!
//! - samplers: `load name= [plugin=]`, `config name= ...`, `start name= interval=
//!   [offset=]`, `stop name=`, `term name=`; `set_memory size=` (accepted), `env`
//! - listeners: `listen xprt=sock port= [host=] [auth=none]` (and `-x` on the command line)
//! - aggregation: `prdcr_add name= host= port= xprt=sock type=active reconnect=`,
//!   `prdcr_start[_regex]`, `prdcr_stop[_regex]`, `prdcr_del`; `updtr_add`,
//!   `updtr_prdcr_add`/`_del`, `updtr_match_add`, `updtr_start`/`_stop`/`_del`;
//!   `strgp_add`, `strgp_prdcr_add`, `strgp_metric_add`, `strgp_start`/`_stop`/`_del`
//! - messages: `msg_enable` / `msg_disable` (the service is off until `msg_enable`, as in
//!   ldmsd: MSG_SUB and published messages are refused with ENOTSUP and the rail connect
//!   message says `msg_enabled=0`); `prdcr_subscribe regex= message_channel= [rx_rate=]`
//!   (`message_tag=` and the older `stream=` name the channel too; a channel holding
//!   one of `$()*+.:?[\]^{|}` is a regex, as ldmsd guesses) and `prdcr_unsubscribe
//!   regex= message_channel=`: the producers named by `regex` forward that channel to this
//!   daemon, whose own subscribers get it with one more hop counted. (In ldmsd `stream=`
//!   subscribes through the legacy ldmsd_stream protocol, which pvloom does not speak:
//!   here it is the message service too.)
//!
//! A peer's SEND_MSG of `{"request":"msg_stats"}` is answered with the bus's counters
//! (pvloom's own request, used by `pvloom ldms msg-stats`). Every other SEND_MSG is an
//! LDMSD request, as `ldmsctl` and `ldmsd_controller` send them: the commands above but
//! `listen` (through the same parser), `msg_stats`, `msg_client_stats`, `prdcr_status`,
//! `greeting` and the configuration counter, answered with ldmsd's errno; anything else
//! with ENOSYS.
#![warn(missing_docs)]

pub mod config;
pub mod daemon;
pub mod sampler;
pub mod store_csv;
