//! The interpreter on scripts written to a scratch directory (no server: nothing here
//! calls `iocInit` except the test that serves on an ephemeral loopback port).

use std::sync::{Arc, Mutex};

use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("pvloom-iocsh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        Dir(dir)
    }
    fn file(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shell(dir: &Dir) -> (Iocsh, Buf, Buf) {
    let (out, err) = (Buf::default(), Buf::default());
    let env = [("HOME".to_owned(), "/home/op".to_owned())];
    let sh = Iocsh::new().with_env(env).with_cwd(&dir.0).with_output(out.clone(), err.clone());
    (sh, out, err)
}

fn value(sh: &Iocsh, name: &str) -> Option<String> {
    sh.with_db(|db| {
        let (id, field) = db.resolve(name)?;
        commands::field_text(db.record(id), field)
    })
}

#[test]
fn environment_expansion_defaults_and_quotes() {
    let dir = Dir::new("env");
    let (mut sh, out, err) = shell(&dir);
    sh.run_script(
        "epicsEnvSet(\"P\", \"BL:\")\nepicsEnvSet R ${P}R1\necho $(R) $(MISSING=fallback) '$(P)'\n\
         epicsEnvSet(LATE, '$(P)')\necho $(LATE)\necho a#b $(HOME)\n",
        "st.cmd",
    );
    assert_eq!(sh.env("R"), Some("BL:R1"));
    // Single quotes stop expansion in the line; the value is expanded when used.
    assert_eq!(sh.env("LATE"), Some("$(P)"));
    let out = out.text();
    assert!(out.contains("\nBL:R1 fallback $(P)\n"), "{out}");
    assert!(out.contains("\nBL:\n"), "{out}");
    assert!(out.contains("\na#b /home/op\n"), "a # inside a line is no comment: {out}");
    assert_eq!(err.text(), "");
}

#[test]
fn undefined_macros_name_file_and_line_and_the_line_is_skipped() {
    let dir = Dir::new("undef");
    let (mut sh, out, err) = shell(&dir);
    sh.run_script("# header\n#- silent\nepicsEnvSet(A, $(NOPE))\necho after\n", "st.cmd");
    let err = err.text();
    assert!(err.starts_with("ERROR st.cmd line 3: macLib: macro \"NOPE\" is undefined"), "{err}");
    assert_eq!(sh.env("A"), None);
    assert_eq!(sh.errors(), 1);
    let out = out.text();
    assert!(out.starts_with("# header\n") && !out.contains("silent") && out.ends_with("after\n"), "{out}");
}

#[test]
fn unknown_commands_are_reported_and_the_script_goes_on() {
    let dir = Dir::new("unknown");
    let (mut sh, _out, err) = shell(&dir);
    sh.run_script("epicsEnvSet A 1\nnoSuchCommand(1, 2)\nepicsEnvSet B 2\nexit\nepicsEnvSet C 3\n", "st.cmd");
    assert_eq!(err.text(), "ERROR st.cmd line 2: Command 'noSuchCommand' not registered.\n");
    assert_eq!((sh.env("B"), sh.env("C")), (Some("2"), None), "exit ends the script");
    let (mut sh, _out, err) = shell(&dir);
    sh.run_script("echo \"open\n", "x.cmd");
    assert_eq!(err.text(), "ERROR x.cmd line 1: Unbalanced quote.\n");
    assert_eq!(sh.errors(), 1);
}

#[test]
fn records_templates_includes_and_cd() {
    let dir = Dir::new("load");
    dir.file("db/motor.db", "record(ao, \"$(P)$(M)\") { field(DESC, \"$(DESC=none)\") field(EGU, \"$(EGU)\") }\n");
    dir.file("db/common.db", "include \"part.db\"\nrecord(stringin, \"$(P)NAME\") { field(VAL, \"$(NAME)\") }\n");
    dir.file("db/part.db", "record(bi, \"$(P)PART\") { field(ZNAM, Off) }\n");
    dir.file(
        "db/motors.substitutions",
        "global { EGU = mm }\nfile motor.db {\n pattern { M, DESC }\n { m1, \"first, fast\" }\n { m2 }\n}\n",
    );
    dir.file("common.cmd", "dbLoadRecords(\"common.db\", \"P=$(P),NAME=$(NAME)\")\n");
    dir.file(
        "st.cmd",
        "epicsEnvSet(\"P\", \"BL:\")\ncd db\n< ../common.cmd\ndbLoadTemplate \"motors.substitutions\" \"P=$(P)\"\n\
         dbLoadDatabase(\"../dbd/softIoc.dbd\")\nsoftIoc_registerRecordDeviceDriver(pdbbase)\ndbl > ../list.txt\n",
    );
    let (mut sh, _out, err) = shell(&dir);
    sh.set_env("NAME", "beamline one");
    sh.run_file("st.cmd").unwrap();
    assert_eq!(err.text(), "");
    assert_eq!(sh.records(), 4);
    assert_eq!(value(&sh, "BL:NAME").as_deref(), Some("beamline one"));
    assert_eq!(value(&sh, "BL:m1.DESC").as_deref(), Some("first, fast"));
    assert_eq!(value(&sh, "BL:m2.DESC").as_deref(), Some("none"));
    assert_eq!(value(&sh, "BL:m2.EGU").as_deref(), Some("mm"));
    assert!(value(&sh, "BL:PART").is_some(), "include found in the working directory");
    let listed = std::fs::read_to_string(dir.0.join("list.txt")).unwrap();
    assert_eq!(listed, "BL:m1\nBL:m2\nBL:PART\nBL:NAME\n", "dbl by record type, redirected");
    assert!(sh.cwd().ends_with("db"));
}

#[test]
fn load_errors_name_the_files_and_lines() {
    let dir = Dir::new("errors");
    dir.file("bad.db", "record(ai, \"$(P)X\") {\n  field(VAL, \"$(UNSET)\")\n}\n");
    dir.file("t.substitutions", "file bad.db {\n  { P=A: }\n}\n");
    let (mut sh, _out, err) = shell(&dir);
    sh.run_script(
        "dbLoadRecords(bad.db, \"P=Q:\")\ndbLoadTemplate(t.substitutions)\ndbLoadRecords(none.db)\n",
        "st.cmd",
    );
    let err = err.text();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("ERROR st.cmd line 1: dbLoadRecords(\"bad.db\"): bad.db:2:"), "{err}");
    assert!(lines[0].contains("macro \"UNSET\" is undefined"), "{err}");
    assert!(lines[1].contains("t.substitutions:2: bad.db:2:"), "the template row's line too: {err}");
    assert!(lines[2].starts_with("ERROR st.cmd line 3: dbLoadRecords(\"none.db\"):"), "{err}");
    assert_eq!(sh.records(), 0);
}

#[test]
fn records_loaded_twice_are_amended_and_type_clashes_refused() {
    let dir = Dir::new("amend");
    dir.file("a.db", "record(ao, X) { field(DESC, first) }\n");
    dir.file("b.db", "record(ao, X) { field(EGU, mm) }\n");
    dir.file("c.db", "record(ai, X) { }\n");
    dir.file("d.db", "record(\"*\", X) { field(PREC, 3) }\n");
    let (mut sh, _out, err) = shell(&dir);
    sh.run_script("dbLoadRecords a.db\ndbLoadRecords b.db\ndbLoadRecords c.db\ndbLoadRecords d.db\n", "st.cmd");
    assert_eq!((value(&sh, "X.DESC").as_deref(), value(&sh, "X.EGU").as_deref()), (Some("first"), Some("mm")));
    assert_eq!(
        value(&sh, "X.PREC").as_deref(),
        Some("3"),
        "record(*, X) amends an earlier file's record: {}",
        err.text()
    );
    assert!(err.text().contains("redefined with type ai"), "{}", err.text());
}

#[test]
fn iocinit_serves_and_dbpf_dbgf_work_after_it_only() {
    let dir = Dir::new("init");
    dir.file("x.db", "record(ao, \"T:AO\") { field(VAL, 1.5) }\nrecord(calc, \"T:C\") { field(INPA, \"T:AO\") field(CALC, \"A*2\") }\n");
    let (mut sh, out, err) = shell(&dir);
    sh.set_env("EPICS_CAS_INTF_ADDR_LIST", "127.0.0.1");
    sh.set_env("EPICS_CAS_SERVER_PORT", "0");
    sh.set_env("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO");
    sh.set_env("EPICS_CAS_BEACON_ADDR_LIST", "127.0.0.1");
    sh.run_script(
        "dbLoadRecords x.db\ndbpf T:AO 2\ndbgf T:AO\niocInit\ndbpf T:AO 4\ndbpf T:C.PROC 1\ndbgf T:C\niocInit\n",
        "st.cmd",
    );
    let out = out.text();
    assert!(
        out.contains("dbpf only works after iocInit\n") && out.contains("dbgf only works after iocInit\n"),
        "{out}"
    );
    assert!(out.contains("records served on port"), "{out}");
    assert!(out.contains("DBF_DOUBLE:         4\n") && out.contains("DBF_DOUBLE:         8\n"), "{out}");
    assert!(err.text().contains("st.cmd line 8: iocInit: the IOC is already initialized"), "{}", err.text());
    assert!(sh.server().is_some_and(|s| s.port() != 0));

    // The interactive shell runs the same commands, to EOF or exit.
    let (tx, rx) = (Buf::default(), Buf::default());
    sh.out = Box::new(tx.clone());
    sh.err = Box::new(rx.clone());
    let mut input = std::io::Cursor::new("dbpf T:AO 5\nbogus\nexit\ndbpf T:AO 6\n");
    sh.run_interactive(&mut input, true);
    let typed = tx.text();
    assert!(typed.starts_with("epics> DBF_DOUBLE:         5\nepics> epics> "), "{typed}");
    assert!(!typed.contains("DBF_DOUBLE:         6"), "exit stops reading: {typed}");
    assert_eq!(rx.text(), "Command 'bogus' not registered.\n");
}

#[test]
fn exit_records_call_the_handler() {
    let dir = Dir::new("exit");
    let (mut sh, _out, _err) = shell(&dir);
    sh.set_env("EPICS_CAS_INTF_ADDR_LIST", "127.0.0.1");
    sh.set_env("EPICS_CAS_SERVER_PORT", "0");
    sh.set_env("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO");
    sh.load_exit_records("IOC1").unwrap();
    let codes = Arc::new(Mutex::new(Vec::new()));
    let seen = codes.clone();
    sh.set_exit_handler(Arc::new(move |code| seen.lock().unwrap().push(code)));
    sh.init().unwrap();
    assert!(value(&sh, "IOC1:BaseVersion").is_some_and(|v| !v.is_empty()));
    assert_eq!(value(&sh, "IOC1:exit.DESC").as_deref(), Some("Exit subroutine"));
    sh.run_script("dbpf IOC1:exit.DESC x\ndbpf IOC1:exit.A 3\ndbpf IOC1:exit.A 0\n", "st.cmd");
    assert_eq!(*codes.lock().unwrap(), vec![1, 0]);
}

#[test]
fn help_and_globs() {
    assert!(glob("db*", "dbLoadRecords") && glob("d?l", "dbl") && !glob("db?", "dbpf"));
    let dir = Dir::new("help");
    let (mut sh, out, _err) = shell(&dir);
    // Bad numbers are no panic and no hang.
    sh.run_script("epicsThreadSleep nan\nepicsThreadSleep -1\nepicsThreadSleep 0.001\nhelp dbLoad*\n", "st.cmd");
    assert!(out.text().contains("dbLoadTemplate file [macros]"), "{}", out.text());
}

#[test]
fn include_path_and_iocshload_scopes() {
    let dir = Dir::new("scopes");
    std::fs::create_dir_all(dir.0.join("lib")).unwrap();
    dir.file("lib/part.db", "record(ai, \"$(P)PART\") { }\n");
    dir.file("db/top.db", "include \"part.db\"\n");
    dir.file("sub.cmd", "epicsEnvSet(SEEN, \"$(UNIT)\")\ndbLoadRecords(\"db/top.db\", \"P=$(UNIT):\")\n");
    let (mut sh, _out, err) = shell(&dir);
    sh.run_script(
        "epicsEnvSet(EPICS_DB_INCLUDE_PATH, \"lib\")\niocshLoad(\"sub.cmd\", \"UNIT=U1\")\necho $(UNIT=gone)\n",
        "st.cmd",
    );
    assert_eq!(err.text(), "");
    assert!(value(&sh, "U1:PART").is_some(), "include found through EPICS_DB_INCLUDE_PATH");
    // epicsEnvSet inside the loaded script is global; the scope's UNIT is not.
    assert_eq!(sh.env("SEEN"), Some("U1"));
    assert_eq!(sh.env("UNIT"), None);
    let (mut sh, _out, err) = shell(&dir);
    sh.run_script("< missing.cmd\n", "st.cmd");
    assert!(err.text().starts_with("ERROR st.cmd line 1: Can't open missing.cmd:"), "{}", err.text());
}
