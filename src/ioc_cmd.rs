//! `pvloom ioc FILE.db... [-m k=v,...]`: a soft IOC serving EPICS database files.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use pvloom_ca::server::db::{Database, Macros, ParseOptions};
use pvloom_ca::server::{AccessRules, DbIoc, Server, ServerConfig};

/// Options of `pvloom ioc`.
#[derive(Debug, clap::Args)]
pub struct IocArgs {
    /// Database files (.db) to load, in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Macro substitutions applied to every file: `-m P=XF:,R=1`.
    #[arg(short = 'm', long = "macros", value_name = "NAME=VALUE,...")]
    macros: Vec<String>,
    /// Access security: an EPICS `.acf` file (UAG, HAG, ASG with RULEs; records pick
    /// their group with the ASG field), or a `.rules` file of lines
    /// `PATTERN NONE|READ|WRITE [host=H,...] [user=U,...]`.
    #[arg(long, value_name = "FILE")]
    access: Option<PathBuf>,
    /// Serve for this many seconds, then exit (default: until interrupted).
    #[arg(long)]
    seconds: Option<f64>,
}

fn load(files: &[PathBuf], macros: &Macros) -> anyhow::Result<Database> {
    let mut db = Database::new();
    let now = SystemTime::now();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let loader = move |name: &str| std::fs::read_to_string(dir.join(name));
        let options = ParseOptions::with_loader(&loader);
        db.load(&text, &file.display().to_string(), macros, &options, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(db)
}

pub fn run(args: &IocArgs) -> anyhow::Result<()> {
    let spec = args.macros.join(",");
    let macros = Macros::parse(&spec).map_err(|e| anyhow::anyhow!("-m {spec:?}: {e}"))?;
    let db = load(&args.files, &macros)?;
    let rules = match &args.access {
        Some(path) => {
            // An EPICS .acf file or pattern rules, told apart by what the file holds.
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            AccessRules::from_file_text(&text).with_context(|| format!("access rules {}", path.display()))?
        }
        None => AccessRules::new(),
    };
    let records = db.len();
    let ioc = DbIoc::new(db);
    let server = Server::builder()
        .config(ServerConfig::from_env())
        .access_rules(rules)
        .start()
        .context("starting the CA server")?;
    ioc.serve(&server);
    println!("pvloom ioc: {records} records served on port {}", server.port());
    match args.seconds {
        Some(seconds) => {
            let duration = std::time::Duration::try_from_secs_f64(seconds.max(0.0))
                .map_err(|_| anyhow::anyhow!("--seconds {seconds}: not a usable duration"))?;
            std::thread::sleep(duration);
        }
        None => loop {
            std::thread::park();
        },
    }
    Ok(())
}
