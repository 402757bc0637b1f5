//! Terminal, user namespace and CLI tests.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use common::*;
use serde_json::json;

fn recv_fd(sock: RawFd) -> OwnedFd {
    unsafe {
        let mut buf = [0u8; 256];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let space = libc::CMSG_SPACE(4) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        assert!(libc::recvmsg(sock, &mut msg, 0) > 0);
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null());
        assert_eq!((*c).cmsg_type, libc::SCM_RIGHTS);
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))
    }
}

#[test]
fn terminal_master_goes_to_the_console_socket() {
    let id = unique_id("tty");
    let mut b = Bundle::new(&id, &["sh", "-c", "tty; echo hello-tty"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let g = Guard::new(&id);
    let sock = b.path().join("console.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let opts = runtime::CreateOpts {
        console_socket: Some(sock.clone()),
        ..Default::default()
    };
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        recv_fd(s.as_raw_fd())
    });
    let st = g.rt.create(&id, b.path(), &opts).unwrap();
    let master = t.join().unwrap();
    g.rt.start(&id).unwrap();
    let code = runtime::wait(st.pid);
    let mut f = std::fs::File::from(master);
    // A pty hands its output over in as many reads as the writes made;
    // once the last slave is closed the master reads EIO, which ends
    // read_to_end with what it read kept in the buffer.
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let out = String::from_utf8_lossy(&buf).to_string();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("hello-tty"), "{out}");
}

#[test]
fn terminal_without_console_socket_is_a_clear_error() {
    let id = unique_id("notty");
    let mut b = Bundle::new(&id, &["true"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let g = Guard::new(&id);
    let e =
        g.rt.create(&id, b.path(), &Default::default())
            .unwrap_err()
            .to_string();
    assert!(e.contains("console socket"), "{e}");
}

#[test]
fn user_namespace_with_id_maps() {
    let id = unique_id("userns");
    let mut b = Bundle::new(
        &id,
        &["sh", "-c", "cat /proc/self/uid_map; id -u; ls -l /dev/null"],
    );
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let g = Guard::new(&id);
    let (code, out) = run_captured(&g, &b);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("100000"), "{out}");
    assert!(out.contains("\n0\n"), "{out}");
    assert!(
        out.contains("1,   3"),
        "/dev/null bound from the host: {out}"
    );
}

#[test]
fn cli_run_returns_the_container_exit_code_and_state_json() {
    let id = unique_id("cli");
    let b = Bundle::new(&id, &["sh", "-c", "exit 7"]);
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_string_lossy().to_string();
    let bp = b.path().to_string_lossy().to_string();
    let cli = |args: &[&str]| {
        let mut v = vec!["runtime".to_string(), "--root".into(), r.clone()];
        v.extend(args.iter().map(|s| s.to_string()));
        runtime::cli_main(v)
    };
    assert_eq!(cli(&["run", "-b", &bp, &id]), 7);
    assert_eq!(cli(&["state", &id]), 1, "run deletes the container");
    let g = runtime::Runtime::new(root.path());
    let _guard = scopeguard(&g, &id);
    assert_eq!(cli(&["create", "-b", &bp, &id]), 0);
    assert_eq!(g.state(&id).unwrap().status, runtime::Status::Created);
    assert_eq!(
        cli(&["delete", &id]),
        1,
        "a created container is not stopped"
    );
    assert_eq!(cli(&["kill", &id, "KILL"]), 0);
    let pid = std::fs::read_to_string(root.path().join(&id).join("state.json")).unwrap();
    let pid = serde_json::from_str::<serde_json::Value>(&pid).unwrap()["pid"]
        .as_i64()
        .unwrap();
    runtime::wait(pid as i32);
    assert_eq!(cli(&["delete", &id]), 0);
    assert_eq!(cli(&["kill", &id, "NOPE"]), 1);
    assert_eq!(cli(&["list", "--format", "json"]), 0);
    assert_eq!(
        runtime::cli::parse_signal("SIGUSR1").unwrap(),
        libc::SIGUSR1
    );
    assert_eq!(runtime::cli::parse_signal("9").unwrap(), 9);
}

struct Scope<'a>(&'a runtime::Runtime, String);
impl Drop for Scope<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete(&self.1, true);
    }
}
fn scopeguard<'a>(rt: &'a runtime::Runtime, id: &str) -> Scope<'a> {
    Scope(rt, id.to_string())
}

#[test]
fn non_root_user_groups_umask_and_cwd() {
    let id = unique_id("user");
    let mut b = Bundle::new(
        &id,
        &["sh", "-c", "id; umask; pwd; grep CapEff /proc/self/status"],
    );
    std::fs::create_dir_all(b.rootfs().join("work")).unwrap();
    b.edit(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 63});
        c["process"]["cwd"] = json!("/work");
    });
    let g = Guard::new(&id);
    let (code, out) = run_captured(&g, &b);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("uid=1000 gid=1000 groups=10,20"), "{out}");
    assert!(out.contains("0077\n/work\n"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
}

#[test]
fn bind_ro_readonly_root_sysctl_devices_and_domainname() {
    let id = unique_id("mnt");
    let mut b = Bundle::new(
        &id,
        &["sh", "-c", "cat /data/f; echo x > /data/f; echo bind=$?; touch /newfile; echo root=$?; \
           cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/kernel/domainname; ls -l /dev/loopx; echo ok > /tmp/t && cat /tmp/t"],
    );
    let data = b.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "from-host\n").unwrap();
    let d = data.to_string_lossy().to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "bind", "source": d, "options": ["rbind", "ro", "rprivate"]}));
        m.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
        c["root"]["readonly"] = json!(true);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["domainname"] = json!("example.test");
        c["linux"]["devices"] = json!([{"path": "/dev/loopx", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600}]);
    });
    let g = Guard::new(&id);
    let (code, out) = run_captured(&g, &b);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from-host\n"), "{out}");
    assert!(
        out.contains("Read-only file system") && out.contains("bind=1") && out.contains("root=1"),
        "{out}"
    );
    assert!(out.contains("\n1\nexample.test\n"), "{out}");
    assert!(
        out.contains("brw-------") && out.contains("7, 200"),
        "{out}"
    );
    assert!(out.ends_with("ok\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(data.join("f")).unwrap(),
        "from-host\n"
    );
}
