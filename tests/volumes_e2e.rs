//! End-to-end tests of volumes and mounts: `-v`, `--mount`, `--tmpfs`,
//! `--volumes-from`, the `volume` commands, copy-up, read-only enforcement
//! and the escape attempts. Each test has its own --root (common::ctr::Env)
//! and host temp dirs, and leaves no mount behind.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::ctr::{assert_clean, err, out, Env};
use common::image::{Entry, ImageBuilder, Layer};

/// A host directory for bind mounts, removed (and unmounted below) on drop.
struct HostDir(tempfile::TempDir);

impl HostDir {
    fn new() -> HostDir {
        HostDir(
            tempfile::Builder::new()
                .prefix("berth-vol-host-")
                .tempdir()
                .unwrap(),
        )
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn s(&self) -> String {
        self.path().display().to_string()
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        common::berth::unmount_all_under(self.0.path());
    }
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// `run --rm IMAGE sh -c SCRIPT` with extra flags; the output.
fn sh(e: &Env, flags: &[&str], script: &str) -> std::process::Output {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(flags);
    a.extend_from_slice(&[&e.image, "sh", "-c", script]);
    e.run(&a)
}

fn sh_ok(e: &Env, flags: &[&str], script: &str) -> String {
    let o = sh(e, flags, script);
    assert_eq!(code(&o), 0, "{flags:?} {script}: {}{}", out(&o), err(&o));
    out(&o)
}

fn volumes(e: &Env) -> Vec<String> {
    let mut v: Vec<String> =
        e.b.ok(&["volume", "ls", "-q"])
            .lines()
            .map(str::to_string)
            .collect();
    v.sort();
    v
}

fn image_with_app() -> ImageBuilder {
    ImageBuilder::new().layer(
        Layer::new()
            .add(Entry::dir("app").owner(1000, 1000).mode(0o750))
            .add(
                Entry::file("app/conf", "from-image\n")
                    .owner(1000, 1001)
                    .mode(0o640),
            )
            .add(Entry::dir("app/sub").owner(2000, 2000).mode(0o711))
            .add(
                Entry::file("app/sub/x", "x")
                    .mode(0o600)
                    .xattr("user.berth", "yes"),
            )
            .add(Entry::symlink("app/link", "conf"))
            .add(Entry::dir("empty").mode(0o755)),
    )
}

#[test]
fn bind_mounts_every_form() {
    let e = Env::new();
    let h = HostDir::new();
    std::fs::write(h.path().join("in"), "host\n").unwrap();
    let hs = h.s();
    // rw bind: both sides see each other's writes.
    let o = sh_ok(
        &e,
        &["-v", &format!("{hs}:/x")],
        "cat /x/in; echo ctr > /x/out",
    );
    assert_eq!(o, "host\n");
    assert_eq!(
        std::fs::read_to_string(h.path().join("out")).unwrap(),
        "ctr\n"
    );
    // Every mode form docker accepts on a bind (shared needs a shared
    // source: bind_propagation_is_honoured).
    for mode in [
        "rw",
        "z",
        "Z",
        "rw,z",
        "rslave",
        "private",
        "rprivate,Z",
        "slave",
        "cached",
        "delegated,ro",
    ] {
        sh_ok(&e, &["-v", &format!("{hs}:/x:{mode}")], "test -f /x/in");
    }
    // ro: reads work, writes fail.
    let o = sh(
        &e,
        &["-v", &format!("{hs}:/x:ro")],
        "cat /x/in && touch /x/new",
    );
    assert_ne!(code(&o), 0);
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    assert!(!h.path().join("new").exists());
    // --mount forms.
    sh_ok(
        &e,
        &["--mount", &format!("type=bind,source={hs},target=/m")],
        "test -f /m/in",
    );
    let o = sh(
        &e,
        &["--mount", &format!("type=bind,src={hs},dst=/m,readonly")],
        "touch /m/f",
    );
    assert_ne!(code(&o), 0);
    let o = sh(
        &e,
        &[
            "--mount",
            &format!("type=bind,src={hs},destination=/m,ro=true,bind-propagation=rslave"),
        ],
        "touch /m/f",
    );
    assert_ne!(code(&o), 0);
    sh_ok(
        &e,
        &["--mount", &format!("type=bind,src={hs},dst=/m,ro=false")],
        "touch /m/f2",
    );
    assert!(h.path().join("f2").exists());
    // A user mount replaces berth's own at the same place (/etc/hosts).
    assert_eq!(
        sh_ok(
            &e,
            &["-v", &format!("{hs}/in:/etc/hosts:ro")],
            "cat /etc/hosts"
        ),
        "host\n"
    );
    // A single file.
    sh_ok(
        &e,
        &["-v", &format!("{hs}/in:/etc/motd:ro")],
        "grep -q host /etc/motd",
    );
    // Relative `./dir` is taken from the current directory, as docker's client does.
    std::fs::create_dir(h.path().join("rel")).unwrap();
    std::fs::write(h.path().join("rel/r"), "rel\n").unwrap();
    let o =
        e.b.command(&["run", "--rm", "-v", "./rel:/r", &e.image, "cat", "/r/r"])
            .current_dir(h.path())
            .output()
            .unwrap();
    assert_eq!((code(&o), out(&o).as_str()), (0, "rel\n"), "{}", err(&o));
    // -v creates a missing host directory; --mount refuses.
    let missing = h.path().join("made/by/v");
    sh_ok(
        &e,
        &["-v", &format!("{}:/x", missing.display())],
        "touch /x/ok",
    );
    assert!(missing.join("ok").exists());
    let gone = h.path().join("nope");
    let o = e.run(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={},dst=/x", gone.display()),
        &e.image,
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        err(&o).contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            gone.display()
        )),
        "{}",
        err(&o)
    );
    assert!(!gone.exists());
    assert_clean(e.b.root());
}

#[test]
fn flag_errors_are_dockers() {
    let e = Env::new();
    let h = HostDir::new();
    let hs = h.s();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-v".into(), "/a:".into()],
            "invalid volume specification: '/a:'",
        ),
        (
            vec!["-v".into(), "/foo:rw".into()],
            "invalid volume specification: '/foo:rw'",
        ),
        (vec!["-v".into(), format!("{hs}:/x:rx")], "invalid mode: rx"),
        (
            vec!["-v".into(), format!("{hs}:/")],
            "destination can't be '/'",
        ),
        (
            vec!["-v".into(), format!("{hs}:rel")],
            "mount path must be absolute",
        ),
        (
            vec!["-v".into(), "../x:/y".into()],
            "includes invalid characters for a local volume name",
        ),
        (
            vec!["-v".into(), "vol:/x:shared".into()],
            "field BindOptions must not be specified",
        ),
        (
            vec![
                "-v".into(),
                format!("{hs}:/x"),
                "-v".into(),
                format!("{hs}:/x"),
            ],
            "Duplicate mount point: /x",
        ),
        (
            vec![
                "-v".into(),
                format!("{hs}:/x"),
                "--mount".into(),
                "type=volume,dst=/x".into(),
            ],
            "Duplicate mount point: /x",
        ),
        (
            vec![
                "-v".into(),
                format!("{hs}:/x"),
                "--tmpfs".into(),
                "/x".into(),
            ],
            "Duplicate mount point: /x",
        ),
        (
            vec!["--mount".into(), "type=bind,src=/a".into()],
            "target is required",
        ),
        (
            vec!["--mount".into(), "type=nfs,dst=/a".into()],
            "mount type unknown",
        ),
        (
            vec![
                "--mount".into(),
                "type=bind,src=/a,dst=/b,volume-nocopy".into(),
            ],
            "cannot mix 'volume-*' options with mount type 'bind'",
        ),
        (
            vec!["--mount".into(), "type=volume,dst=/b,ro".into()],
            "must not set ReadOnly mode when using anonymous volumes",
        ),
        (
            vec!["--mount".into(), "type=tmpfs,dst=/b,tmpfs-size=huge".into()],
            "invalid value for tmpfs-size: huge",
        ),
        (
            vec!["--mount".into(), "type=bind,src=/a,dst=/b,bogus=1".into()],
            "unexpected key 'bogus' in 'bogus=1'",
        ),
        (
            vec![
                "--mount".into(),
                "type=volume,src=v1,dst=/b,volume-opt=foo=bar".into(),
            ],
            "invalid option key: \"foo\"",
        ),
        (
            vec!["--volumes-from".into(), "nosuch".into()],
            "No such container: nosuch",
        ),
        (vec!["--tmpfs".into(), "rel".into()], "must be absolute"),
    ];
    for (flags, want) in cases {
        let mut a: Vec<&str> = vec!["run", "--rm"];
        a.extend(flags.iter().map(String::as_str));
        a.extend_from_slice(&[&e.image, "true"]);
        let o = e.run(&a);
        assert_eq!(code(&o), 125, "{flags:?}: {}", err(&o));
        assert!(
            err(&o).contains(want),
            "{flags:?}: want {want:?}, got {}",
            err(&o)
        );
    }
    // Nothing was created by the failed runs.
    assert_eq!(e.b.ok(&["ps", "-aq"]), "");
    assert!(volumes(&e).is_empty());
}

#[test]
fn readonly_is_recursive_for_submounts() {
    let e = Env::new();
    let h = HostDir::new();
    std::fs::create_dir(h.path().join("sub")).unwrap();
    let sub = h.path().join("sub");
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "berth-test",
            sub.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(sub.join("inner"), "i").unwrap();
    let hs = h.s();
    // docker ≥ 25 with kernel ≥ 5.12: `ro` is read-only in submounts too.
    let o = sh(
        &e,
        &["-v", &format!("{hs}:/x:ro")],
        "cat /x/sub/inner && touch /x/sub/new",
    );
    assert_ne!(code(&o), 0, "{}", out(&o));
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    let o = sh(&e, &["--mount", &format!("type=bind,src={hs},dst=/x,readonly,bind-recursive=readonly,bind-propagation=rprivate")], "touch /x/sub/new");
    assert_ne!(code(&o), 0);
    // bind-recursive=writable: docker 24's behaviour, only the top is read-only.
    sh_ok(
        &e,
        &[
            "--mount",
            &format!("type=bind,src={hs},dst=/x,readonly,bind-recursive=writable"),
        ],
        "touch /x/sub/w && ! touch /x/top",
    );
    assert!(sub.join("w").exists());
    // bind-recursive=disabled: the submount is not carried into the container.
    let o = sh_ok(
        &e,
        &[
            "--mount",
            &format!("type=bind,src={hs},dst=/x,bind-recursive=disabled"),
        ],
        "ls /x/sub | wc -l",
    );
    assert_eq!(o.trim(), "0");
    // A read-only named volume.
    e.b.ok(&["volume", "create", "rov"]);
    let o = sh(&e, &["-v", "rov:/v:ro"], "touch /v/f");
    assert_ne!(code(&o), 0);
    drop(h);
    assert_clean(e.b.root());
}

#[test]
fn named_volume_lifecycle() {
    let e = Env::new();
    // Created on demand by run; data outlives the container.
    e.b.ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "data:/d",
        &e.image,
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    assert_eq!(volumes(&e), vec!["data"]);
    let o = e.run(&["volume", "rm", "data"]);
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains("remove data: volume is in use - ["),
        "{}",
        err(&o)
    );
    e.b.ok(&["rm", "-v", "w1"]);
    // rm -v keeps named volumes.
    assert_eq!(volumes(&e), vec!["data"]);
    assert_eq!(sh_ok(&e, &["-v", "data:/other"], "cat /other/f"), "kept\n");
    // Two containers share it.
    e.b.ok(&[
        "run", "-d", "--name", "a1", "-v", "data:/d", &e.image, "sleep", "100",
    ]);
    sh_ok(&e, &["-v", "data:/d"], "echo second > /d/g");
    assert_eq!(e.b.ok(&["exec", "a1", "cat", "/d/g"]), "second\n");
    let (c, m) = e.b.fails(&["volume", "rm", "data"]);
    assert_eq!(c, 1);
    assert!(m.contains("volume is in use"), "{m}");
    // -f does not remove a volume in use (docker's -f only ignores missing ones).
    let (c, _) = e.b.fails(&["volume", "rm", "-f", "data"]);
    assert_eq!(c, 1);
    e.b.ok(&["rm", "-f", "a1"]);
    assert_eq!(e.b.ok(&["volume", "rm", "data"]), "data\n");
    assert!(volumes(&e).is_empty());
    let (c, m) = e.b.fails(&["volume", "rm", "data"]);
    assert_eq!(c, 1);
    assert!(m.contains("no such volume"), "{m}");
    e.b.ok(&["volume", "rm", "-f", "data"]);
    // create / inspect / ls
    assert_eq!(
        e.b.ok(&["volume", "create", "--label", "team=a", "-l", "x", "v1"]),
        "v1\n"
    );
    assert_eq!(e.b.ok(&["volume", "create", "--name", "v2"]), "v2\n");
    assert_eq!(e.b.ok(&["volume", "create", "v2"]), "v2\n");
    let gen = e.b.ok(&["volume", "create"]);
    assert_eq!(gen.trim().len(), 64);
    let j: serde_json::Value = serde_json::from_str(&e.b.ok(&["volume", "inspect", "v1"])).unwrap();
    let v = &j[0];
    assert_eq!(v["Name"], "v1");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    assert_eq!(v["Options"], serde_json::Value::Null);
    let mp = v["Mountpoint"].as_str().unwrap();
    assert_eq!(Path::new(mp), e.b.root().join("volumes/v1/_data"));
    assert!(v["CreatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        e.b.ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "v2"]),
        "v2 local\n"
    );
    // The generic inspect finds volumes too.
    assert_eq!(
        e.b.ok(&["inspect", "-f", "{{.Name}} {{.Scope}}", "v2"]),
        "v2 local\n"
    );
    let o = e.run(&["volume", "inspect", "v1", "nope"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("No such volume: nope"));
    let ls = e.b.ok(&["volume", "ls"]);
    let mut lines = ls.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with("DRIVER") && head.contains("VOLUME NAME"),
        "{ls}"
    );
    assert!(ls.contains("local     v1"), "{ls}");
    assert_eq!(
        e.b.ok(&["volume", "ls", "-q", "-f", "label=team=a"]),
        "v1\n"
    );
    assert_eq!(e.b.ok(&["volume", "ls", "-q", "-f", "label=team"]), "v1\n");
    assert_eq!(e.b.ok(&["volume", "ls", "-q", "-f", "name=v2"]), "v2\n");
    assert_eq!(
        e.b.ok(&["volume", "ls", "-q", "-f", "driver=local", "-f", "name=v1"]),
        "v1\n"
    );
    assert_eq!(
        e.b.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}}:{{.Labels}}",
            "-f",
            "name=v1"
        ]),
        "v1:team=a,x=\n"
    );
    let js =
        e.b.ok(&["volume", "ls", "--format", "json", "-f", "name=v2"]);
    let jv: serde_json::Value = serde_json::from_str(js.trim()).unwrap();
    assert_eq!(jv["Name"], "v2");
    assert_eq!(jv["Scope"], "local");
    e.b.ok(&["create", "--name", "holder", "-v", "v1:/v", &e.image]);
    assert_eq!(
        e.b.ok(&["volume", "ls", "-q", "-f", "dangling=false"]),
        "v1\n"
    );
    assert!(!e
        .b
        .ok(&["volume", "ls", "-q", "-f", "dangling=true"])
        .contains("v1"));
    let (c, m) = e.b.fails(&["volume", "ls", "-f", "bogus=1"]);
    assert_eq!(c, 1);
    assert!(m.contains("invalid filter 'bogus'"), "{m}");
    // Bad names and drivers.
    for bad in ["../x", "a/b", "x", ".hidden"] {
        let (c, m) = e.b.fails(&["volume", "create", bad]);
        assert_eq!(c, 1);
        assert!(
            m.contains("includes invalid characters for a local volume name"),
            "{m}"
        );
    }
    assert!(!e.b.root().join("x").exists() && !e.b.root().join("volumes/a").exists());
    let (_, m) = e.b.fails(&["volume", "create", "-d", "nfs", "v3"]);
    assert!(m.contains("plugin \"nfs\" not found"), "{m}");
    let (_, m) = e.b.fails(&["volume", "create", "-o", "foo=bar", "v3"]);
    assert!(m.contains("invalid option key: \"foo\""), "{m}");
    let (_, m) = e.b.fails(&["volume", "create", "-o", "type=tmpfs", "v3"]);
    assert!(m.contains("missing required option: \"device\""), "{m}");
    // system df counts volumes.
    let df = e.b.ok(&["system", "df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Local Volumes") && l.contains(" 3 ") && l.contains(" 1 ")),
        "{df}"
    );
    let dfv = e.b.ok(&["system", "df", "-v"]);
    assert!(
        dfv.contains("Local Volumes space usage:") && dfv.contains("v1"),
        "{dfv}"
    );
    assert_clean(e.b.root());
}

#[test]
fn copy_up_keeps_owners_modes_xattrs_and_links() {
    let e = Env::with(image_with_app().volume("/app"));
    let script = "stat -c '%u:%g %a %n' /app /app/conf /app/sub /app/sub/x; readlink /app/link; cat /app/conf";
    let want = "1000:1000 750 /app\n1000:1001 640 /app/conf\n2000:2000 711 /app/sub\n0:0 600 /app/sub/x\nconf\nfrom-image\n";
    // Named volume, new and empty: filled from the image.
    assert_eq!(sh_ok(&e, &["-v", "appv:/app"], script), want);
    let data = e.b.root().join("volumes/appv/_data");
    let m = std::fs::metadata(&data).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o750));
    let x = std::fs::metadata(data.join("sub/x")).unwrap();
    assert_eq!(x.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        common::store::xattr(&data.join("sub/x"), "user.berth").as_deref(),
        Some(&b"yes"[..])
    );
    // Not empty any more: the image no longer overwrites it.
    sh_ok(&e, &["-v", "appv:/app"], "echo changed > /app/conf");
    assert_eq!(
        sh_ok(&e, &["-v", "appv:/app"], "cat /app/conf"),
        "changed\n"
    );
    // Anonymous volumes (-v /x and --mount without source) copy too.
    assert_eq!(sh_ok(&e, &["-v", "/app"], script), want);
    assert_eq!(
        sh_ok(&e, &["--mount", "type=volume,dst=/app"], script),
        want
    );
    // nocopy / volume-nocopy: empty.
    assert_eq!(
        sh_ok(&e, &["-v", "nc:/app:nocopy"], "ls -A /app | wc -l").trim(),
        "0"
    );
    assert_eq!(
        sh_ok(
            &e,
            &["--mount", "src=nc2,dst=/app,volume-nocopy"],
            "ls -A /app | wc -l"
        )
        .trim(),
        "0"
    );
    // The image's VOLUME gets an anonymous volume with the image's content.
    let id = e.b.ok(&["create", &e.image, "cat", "/app/conf"]);
    let id = id.trim();
    let mounts = e.inspect(id, "{{json .Mounts}}");
    let mv: serde_json::Value = serde_json::from_str(&mounts).unwrap();
    assert_eq!(mv[0]["Type"], "volume");
    assert_eq!(mv[0]["Destination"], "/app");
    assert_eq!(mv[0]["Driver"], "local");
    assert_eq!(mv[0]["RW"], true);
    let anon = mv[0]["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64);
    let o = e.run(&["start", "-a", id]);
    assert_eq!(out(&o), "from-image\n", "{}", err(&o));
    let j: serde_json::Value =
        serde_json::from_str(&e.b.ok(&["volume", "inspect", &anon])).unwrap();
    assert_eq!(j[0]["Labels"]["com.docker.volume.anonymous"], "");
    e.b.ok(&["rm", "-v", id]);
    assert!(!volumes(&e).contains(&anon));
    assert_clean(e.b.root());
}

#[test]
fn anonymous_volumes_rm_and_prune() {
    let e = Env::new();
    // run --rm removes its anonymous volumes, keeps named ones.
    sh_ok(
        &e,
        &["-v", "/anon", "-v", "keep:/k"],
        "echo > /anon/f; echo > /k/f",
    );
    assert_eq!(volumes(&e), vec!["keep"]);
    // rm without -v keeps the anonymous volume; prune removes it.
    let id = e.b.ok(&["create", "-v", "/anon", &e.image, "true"]);
    let id = id.trim();
    let anon = e.inspect(id, "{{range .Mounts}}{{.Name}}{{end}}");
    e.b.ok(&["rm", id]);
    assert!(volumes(&e).contains(&anon));
    // An in-use anonymous volume survives prune.
    let busy = e.b.ok(&["create", "-v", "/busy", &e.image, "true"]);
    let busy_vol = e.inspect(busy.trim(), "{{range .Mounts}}{{.Name}}{{end}}");
    e.b.ok(&["volume", "create", "--label", "p=1", "named1"]);
    let p = e.b.ok(&["volume", "prune", "-f"]);
    assert!(
        p.starts_with("Deleted Volumes:\n") && p.contains(&anon),
        "{p}"
    );
    assert!(p.contains("Total reclaimed space:"), "{p}");
    let left = volumes(&e);
    assert!(
        left.contains(&busy_vol)
            && left.contains(&"keep".to_string())
            && left.contains(&"named1".to_string()),
        "{left:?}"
    );
    // Without -f and without a terminal: docker asks and declines.
    e.b.ok(&["volume", "prune", "-a"]);
    assert_eq!(volumes(&e).len(), 3);
    // -a with a label filter, then -a: every unused volume, named too.
    let p =
        e.b.ok(&["volume", "prune", "-a", "-f", "--filter", "label=p=1"]);
    assert!(p.contains("named1") && !p.contains("keep"), "{p}");
    let p = e.b.ok(&["volume", "prune", "-af"]);
    assert!(p.contains("keep"), "{p}");
    assert_eq!(volumes(&e), vec![busy_vol.clone()]);
    e.b.ok(&["rm", "-v", busy.trim()]);
    assert!(volumes(&e).is_empty());
    assert_clean(e.b.root());
}

#[test]
fn volumes_from_and_inspect_shape() {
    let e = Env::new();
    let h = HostDir::new();
    let hs = h.s();
    e.b.ok(&[
        "create",
        "--name",
        "src",
        "-v",
        "shared:/s",
        "-v",
        &format!("{hs}:/h:ro,rslave"),
        "-v",
        "/anon",
        &e.image,
        "true",
    ]);
    let j: serde_json::Value = serde_json::from_str(&e.b.ok(&["inspect", "src"])).unwrap();
    let c = &j[0];
    assert_eq!(
        c["HostConfig"]["Binds"],
        serde_json::json!(["shared:/s", format!("{hs}:/h:ro,rslave")])
    );
    assert_eq!(c["Config"]["Volumes"], serde_json::json!({"/anon": {}}));
    let m = c["Mounts"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    let bind = m.iter().find(|x| x["Type"] == "bind").unwrap();
    assert_eq!(bind["Source"], hs.as_str());
    assert_eq!(bind["Destination"], "/h");
    assert_eq!(bind["Mode"], "ro,rslave");
    assert_eq!(bind["RW"], false);
    assert_eq!(bind["Propagation"], "rslave");
    assert!(bind.get("Name").is_none());
    let vol = m.iter().find(|x| x["Name"] == "shared").unwrap();
    assert_eq!(vol["Type"], "volume");
    assert_eq!(vol["Driver"], "local");
    assert_eq!(vol["Mode"], "z");
    assert_eq!(vol["Propagation"], "");
    assert_eq!(
        Path::new(vol["Source"].as_str().unwrap()),
        e.b.root().join("volumes/shared/_data")
    );
    sh_ok(&e, &["-v", "shared:/s"], "echo from-src > /s/f");
    std::fs::write(h.path().join("hf"), "host").unwrap();
    // --volumes-from: same mounts; :ro makes them read-only.
    assert_eq!(
        sh_ok(
            &e,
            &["--volumes-from", "src"],
            "cat /s/f /h/hf; echo w > /s/w"
        ),
        "from-src\nhost"
    );
    let o = sh(&e, &["--volumes-from", "src:ro"], "cat /s/f && touch /s/x");
    assert_ne!(code(&o), 0);
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    // :rw does not make a read-only mount writable.
    let o = sh(&e, &["--volumes-from", "src:rw"], "touch /h/x");
    assert_ne!(code(&o), 0);
    // --mount shows in HostConfig.Mounts.
    let id = e.b.ok(&[
        "create",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m",
        &e.image,
        "true",
    ]);
    let hm = e.inspect(id.trim(), "{{json .HostConfig.Mounts}}");
    let hv: serde_json::Value = serde_json::from_str(&hm).unwrap();
    assert_eq!(hv[0]["Type"], "tmpfs");
    assert_eq!(hv[0]["TmpfsOptions"]["SizeBytes"], 1048576);
    // rm -v of the user of --volumes-from does not remove src's anonymous volume.
    let user =
        e.b.ok(&["create", "--volumes-from", "src", &e.image, "true"]);
    let n = volumes(&e).len();
    e.b.ok(&["rm", "-v", user.trim()]);
    assert_eq!(volumes(&e).len(), n);
    // rm -v of src keeps its anonymous volume while another container uses it.
    let anon = e.inspect(
        "src",
        "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
    );
    assert_eq!(anon.len(), 64, "{anon}");
    let user2 =
        e.b.ok(&["create", "--volumes-from", "src", &e.image, "true"]);
    e.b.ok(&["rm", "-v", "src"]);
    assert!(volumes(&e).contains(&anon));
    e.b.ok(&["rm", user2.trim()]);
    assert!(volumes(&e).contains(&anon));
    assert_clean(e.b.root());
}

#[test]
fn tmpfs_flag_and_mount() {
    let e = Env::new();
    let o = sh_ok(
        &e,
        &["--tmpfs", "/t:size=1m,mode=1770"],
        "grep ' /t ' /proc/mounts; stat -c %a /t",
    );
    assert!(
        o.contains("tmpfs /t tmpfs") && o.contains("size=1024k") && o.contains("noexec"),
        "{o}"
    );
    assert!(o.ends_with("1770\n"), "{o}");
    let o = sh_ok(&e, &["--tmpfs", "/t:exec"], "grep ' /t ' /proc/mounts");
    assert!(!o.contains("noexec"), "{o}");
    let o = sh_ok(
        &e,
        &[
            "--mount",
            "type=tmpfs,destination=/m,tmpfs-size=2m,tmpfs-mode=700",
        ],
        "grep ' /m ' /proc/mounts; stat -c %a /m",
    );
    assert!(o.contains("size=2048k") && o.ends_with("700\n"), "{o}");
    let o = sh(&e, &["--mount", "type=tmpfs,dst=/m,ro"], "touch /m/x");
    assert_ne!(code(&o), 0);
    // A --tmpfs below a volume is mounted after it (parents first).
    let o = sh_ok(
        &e,
        &["-v", "outer:/a", "--tmpfs", "/a/b"],
        "grep -c ' /a/b tmpfs' /proc/mounts",
    );
    assert_eq!(o.trim(), "1");
    // Mounts on a --read-only rootfs: new targets are created, stay writable.
    sh_ok(
        &e,
        &[
            "--read-only",
            "-v",
            "rv:/newdir/data",
            "--tmpfs",
            "/scratch",
        ],
        "touch /newdir/data/f /scratch/f && ! touch /f 2>/dev/null",
    );
    assert_clean(e.b.root());
}

#[test]
fn local_driver_options() {
    let e = Env::new();
    let h = HostDir::new();
    std::fs::write(h.path().join("f"), "bound").unwrap();
    e.b.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m,uid=1000",
        "tv",
    ]);
    let j: serde_json::Value = serde_json::from_str(&e.b.ok(&["volume", "inspect", "tv"])).unwrap();
    assert_eq!(
        j[0]["Options"],
        serde_json::json!({"device": "tmpfs", "o": "size=2m,uid=1000", "type": "tmpfs"})
    );
    let o = sh_ok(
        &e,
        &["-v", "tv:/t"],
        "grep ' /t ' /proc/mounts; stat -c %u /t; echo x > /t/f",
    );
    assert!(
        o.contains("tmpfs /t tmpfs") && o.contains("size=2048k"),
        "{o}"
    );
    assert!(o.ends_with("1000\n"), "{o}");
    // Unmounted after the last user stopped: the tmpfs content is gone.
    let data = e.b.root().join("volumes/tv/_data");
    assert!(!data.join("f").exists());
    assert_clean(e.b.root());
    // Two containers share one mount while both run.
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "t1",
        "-v",
        "tv:/t",
        &e.image,
        "sh",
        "-c",
        "echo one > /t/one; sleep 100",
    ]);
    e.wait_for("t1 writes", || data.join("one").exists());
    assert_eq!(sh_ok(&e, &["-v", "tv:/t"], "cat /t/one"), "one\n");
    assert!(
        data.join("one").exists(),
        "the second container's exit unmounted the first one's volume"
    );
    e.b.ok(&["rm", "-f", "t1"]);
    assert!(!data.join("one").exists());
    // A bind of a host directory through the driver; removal keeps the host files.
    e.b.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &format!("device={}", h.s()),
        "-o",
        "o=bind",
        "bv",
    ]);
    assert_eq!(sh_ok(&e, &["-v", "bv:/b"], "cat /b/f"), "bound");
    e.b.ok(&["volume", "rm", "bv"]);
    assert_eq!(
        std::fs::read_to_string(h.path().join("f")).unwrap(),
        "bound"
    );
    // --mount creates the volume with its driver options and labels.
    let o = sh_ok(
        &e,
        &["--mount", "src=mv,dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m,volume-label=k=v"],
        "grep ' /m ' /proc/mounts",
    );
    assert!(
        o.contains("tmpfs /m tmpfs") && o.contains("size=1024k"),
        "{o}"
    );
    assert_eq!(
        e.b.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Labels.k}} {{.Options.type}}",
            "mv"
        ]),
        "v tmpfs\n"
    );
    // A device that cannot be mounted: start fails with the driver's error.
    e.b.ok(&[
        "volume",
        "create",
        "-o",
        "type=nosuchfs",
        "-o",
        "device=x",
        "badv",
    ]);
    let o = sh(&e, &["-v", "badv:/b"], "true");
    assert_ne!(code(&o), 0);
    assert!(
        err(&o).contains("failed to mount local volume"),
        "{}",
        err(&o)
    );
    assert_clean(e.b.root());
}

#[test]
fn escapes_are_refused() {
    let outside = HostDir::new();
    std::fs::write(outside.path().join("secret"), "host-secret").unwrap();
    let target = outside.s();
    let up = format!("../../../../../../../..{target}");
    let img = ImageBuilder::new().layer(
        Layer::new()
            .symlink("evil", &target)
            .symlink("evil2", &up)
            .add(Entry::dir("real"))
            .add(Entry::file("real/inside", "in-rootfs"))
            .symlink("inabs", "/real")
            .symlink("inrel", "../../../../../../real"),
    );
    let e = Env::with(img);
    // Volume names cannot leave the volumes directory.
    let (c, _) = e.b.fails(&["volume", "create", "../x"]);
    assert_eq!(c, 1);
    assert!(!e.b.root().join("x").exists());
    let o = e.run(&["run", "--rm", "-v", "../../etc:/x", &e.image, "true"]);
    assert_eq!(code(&o), 125);
    let (c, _) = e.b.fails(&["volume", "inspect", "../volumes"]);
    assert_eq!(c, 1);
    let (c, _) = e.b.fails(&["volume", "rm", ".."]);
    assert_eq!(c, 1);
    // A symlink at the mount target pointing at a host path resolves inside
    // the rootfs: as docker does, the missing target is created there and
    // the volume is mounted on it; nothing is copied from or written to the
    // host path the link names.
    for (i, t) in ["/evil", "/evil2"].iter().enumerate() {
        let v = format!("ev{i}");
        let o = sh(
            &e,
            &["-v", &format!("{v}:{t}")],
            &format!("echo in > {t}/w; ls -A {t}"),
        );
        assert_eq!(code(&o), 0, "{v}:{t}: {}{}", out(&o), err(&o));
        assert_eq!(out(&o), "w\n", "{v}:{t}: only the write, no host file");
        let data = e.b.root().join(format!("volumes/{v}/_data"));
        assert_eq!(std::fs::read_to_string(data.join("w")).unwrap(), "in\n");
    }
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "a write went to the host"
    );
    assert!(common::berth::mounts_under(outside.path()).is_empty());
    // Symlinks that stay inside are followed as the container sees them.
    for (v, t) in [("in1", "/inabs"), ("in2", "/inrel")] {
        let o = sh_ok(
            &e,
            &["-v", &format!("{v}:{t}")],
            &format!("cat {t}/inside; echo w > {t}/new; cat /real/new"),
        );
        assert_eq!(o, "in-rootfsw\n");
        assert!(e.b.root().join(format!("volumes/{v}/_data/new")).exists());
    }
    assert_clean(e.b.root());
}

#[test]
fn concurrent_runs_create_one_volume() {
    let e = Env::with(image_with_app());
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let mut c = e.b.command(&[
                "run",
                "--rm",
                "-v",
                "race:/app",
                &e.image,
                "sh",
                "-c",
                &format!("echo {i} > /app/{i}"),
            ]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for h in hs {
        let o = h.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
    }
    assert_eq!(volumes(&e), vec!["race"]);
    let n = std::fs::read_dir(e.b.root().join("volumes/race/_data"))
        .unwrap()
        .count();
    // Four files from the runs plus conf, sub and link copied up once.
    assert_eq!(n, 7);
    let entries: Vec<PathBuf> = std::fs::read_dir(e.b.root().join("volumes"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

fn host_mount(args: &[&str]) {
    let st = std::process::Command::new("mount")
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "mount {args:?}");
}

#[test]
fn bind_propagation_is_honoured() {
    let e = Env::new();
    let h = HostDir::new();
    let hs = h.s();
    host_mount(&["--bind", &hs, &hs]);
    host_mount(&["--make-shared", &hs]);
    std::fs::create_dir(h.path().join("sub")).unwrap();
    std::fs::create_dir(h.path().join("sub2")).unwrap();
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "slave1",
        "-v",
        &format!("{hs}:/x:rslave"),
        &e.image,
        "sleep",
        "100",
    ]);
    e.b.ok(&[
        "run",
        "-d",
        "--name",
        "priv1",
        "-v",
        &format!("{hs}:/x"),
        &e.image,
        "sleep",
        "100",
    ]);
    // A mount made on the host after the start reaches the rslave one only.
    host_mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "late",
        h.path().join("sub").to_str().unwrap(),
    ]);
    std::fs::write(h.path().join("sub/late"), "late").unwrap();
    assert_eq!(e.b.ok(&["exec", "slave1", "cat", "/x/sub/late"]), "late");
    let o = e.run(&["exec", "priv1", "ls", "/x/sub"]);
    assert_eq!(out(&o), "", "{}", err(&o));
    assert_eq!(
        e.inspect("slave1", "{{range .Mounts}}{{.Propagation}}{{end}}"),
        "rslave"
    );
    assert_eq!(
        e.inspect("priv1", "{{range .Mounts}}{{.Propagation}}{{end}}"),
        "rprivate"
    );
    // shared needs a shared source (docker's error); a private source with
    // rslave falls back to private, as docker does.
    let p = HostDir::new();
    let o = e.run(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/x:shared", p.s()),
        &e.image,
        "true",
    ]);
    assert_ne!(code(&o), 0);
    assert!(err(&o).contains("is not a shared mount"), "{}", err(&o));
    sh_ok(&e, &["-v", &format!("{}:/x:rslave", p.s())], "true");
    sh_ok(
        &e,
        &["-v", &format!("{hs}:/x:rshared")],
        "grep -q ' /x ' /proc/self/mountinfo",
    );
    e.b.ok(&["rm", "-f", "slave1", "priv1"]);
    drop(h);
    assert_clean(e.b.root());
}

/// The pid of the monitor of container `id`, as its state.json records it
/// (a monitor forked by `run` carries the CLI's argv, not `__monitor ID`).
fn monitor_pid(root: &std::path::Path, id: &str) -> i32 {
    let st = std::fs::read_to_string(root.join("containers").join(id).join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    let pid = v["MonitorPid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0, "no monitor for {id}: {st}");
    pid
}

#[test]
fn local_driver_mount_survives_a_killed_monitor_cleanly() {
    let e = Env::new();
    e.b.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "kv",
    ]);
    let id =
        e.b.ok(&["run", "-d", "-v", "kv:/t", &e.image, "sleep", "100"]);
    let id = id.trim().to_string();
    let data = e.b.root().join("volumes/kv/_data");
    assert!(common::berth::mounts_under(&e.b.root().join("volumes")).contains(&data));
    let pid: i32 = e.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    unsafe {
        libc::kill(monitor_pid(e.b.root(), &id), libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
    common::ctr::reap_monitors(std::time::Duration::from_secs(10));
    // The dead container still holds the volume.
    let (c, m) = e.b.fails(&["volume", "rm", "kv"]);
    assert_eq!(c, 1, "{m}");
    // A restart replaces the stale mount; rm releases it.
    e.b.ok(&["start", &id]);
    assert_eq!(
        e.b.ok(&["exec", &id, "sh", "-c", "echo ok > /t/f; cat /t/f"]),
        "ok\n"
    );
    e.b.ok(&["rm", "-f", &id]);
    assert!(common::berth::mounts_under(&e.b.root().join("volumes")).is_empty());
    assert_eq!(e.b.ok(&["volume", "rm", "kv"]), "kv\n");
    assert_clean(e.b.root());
}
