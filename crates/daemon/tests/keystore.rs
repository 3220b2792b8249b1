//! Key files `entente` writes are read by foundry's `cast wallet` (an independent implementation of
//! Web3 Secret Storage), and key files `cast` writes are imported by `entente`. Bad passwords and
//! files are refused with the reason, and nothing secret lands in the configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cast() -> PathBuf {
    let p = root().join("node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    assert!(
        p.exists(),
        "{} is missing: run `npm ci` in the repository root",
        p.display()
    );
    p
}

fn entente(home: &Path, password_file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entente"))
        .arg("--home")
        .arg(home)
        .arg("--password-file")
        .arg(password_file)
        .args(args)
        .env_remove("ENTENTE_PASSWORD")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The value of `key=` on the line starting with `what`.
fn field(out: &str, what: &str, key: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("no {what} line in {out}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_key_file_entente_writes_is_read_by_cast_and_one_cast_writes_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    // geth's standard scrypt cost, as a real key is written
    let out = stdout(&entente(&home, &pw, &["init", "--name", "alice"]));
    let address = field(&out, "account", "address");
    let keystore = PathBuf::from(field(&out, "account", "keystore"));
    let cast_address = Command::new(cast())
        .args(["wallet", "address", "--keystore"])
        .arg(&keystore)
        .args(["--password", "correct horse battery staple"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&cast_address).trim(),
        address,
        "cast opens entente's key file to the same account"
    );
    assert_eq!(mode(&keystore), 0o600);
    assert_eq!(mode(&home.join("api-token")), 0o600);
    let config = std::fs::read_to_string(home.join("entente.toml")).unwrap();
    assert!(
        !config.contains("correct horse"),
        "no password in the configuration"
    );

    // cast writes a key file; entente imports it as a second account
    let cast_dir = dir.path().join("cast");
    std::fs::create_dir(&cast_dir).unwrap();
    let made = Command::new(cast())
        .args(["wallet", "new"])
        .arg(&cast_dir)
        .args(["--unsafe-password", "hunter2"])
        .output()
        .unwrap();
    let made = stdout(&made);
    let cast_made = made
        .lines()
        .find_map(|l| l.strip_prefix("Address:"))
        .unwrap()
        .trim()
        .to_string();
    let file = std::fs::read_dir(&cast_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pw2 = dir.path().join("pw2");
    std::fs::write(&pw2, "hunter2").unwrap();
    let out = stdout(&entente(
        &home,
        &pw2,
        &[
            "account",
            "new",
            "bob",
            "--import-keystore",
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(field(&out, "account", "address"), cast_made);
    // and the imported copy still opens with cast's password
    let list = stdout(&entente(&home, &pw2, &["account", "list"]));
    assert_eq!(list.lines().count(), 2);
    let bob_keystore = list
        .lines()
        .find(|l| l.contains("name=bob"))
        .map(|l| field(l, "account", "keystore"))
        .unwrap();
    let again = Command::new(cast())
        .args([
            "wallet",
            "address",
            "--keystore",
            &bob_keystore,
            "--password",
            "hunter2",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&again).trim(), cast_made);
}

#[test]
fn wrong_passwords_and_bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "right").unwrap();
    stdout(&entente(&home, &pw, &["init", "--light-kdf", "--name", "alice"]));
    let config = std::fs::read_to_string(home.join("entente.toml")).unwrap();
    let fail = |o: Output| -> String {
        assert!(
            !o.status.success(),
            "should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).unwrap()
    };
    // init again
    assert!(fail(entente(&home, &pw, &["init", "--light-kdf"])).contains("set up already"));
    // a key file opened with the wrong password
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "wrong").unwrap();
    let alice = home.join("keys/alice.json");
    let e = fail(entente(
        &home,
        &wrong,
        &[
            "account",
            "new",
            "carol",
            "--import-keystore",
            alice.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("wrong password"), "{e}");
    // the same key twice, a bad name, a file that is not a key file, an empty password
    assert!(
        fail(entente(
            &home,
            &pw,
            &[
                "account",
                "new",
                "carol",
                "--import-keystore",
                alice.to_str().unwrap()
            ]
        ))
        .contains("has this key already")
    );
    assert!(fail(entente(&home, &pw, &["account", "new", "Carol!", "--light-kdf"])).contains("account name"));
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"version\": 3}").unwrap();
    assert!(
        fail(entente(
            &home,
            &pw,
            &[
                "account",
                "new",
                "dave",
                "--import-keystore",
                junk.to_str().unwrap()
            ]
        ))
        .contains("Web3 Secret Storage")
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    assert!(
        fail(entente(&home, &empty, &["account", "new", "erin", "--light-kdf"])).contains("empty password")
    );
    assert_eq!(
        std::fs::read_to_string(home.join("entente.toml")).unwrap(),
        config,
        "nothing changed"
    );
    assert_eq!(std::fs::read_dir(home.join("keys")).unwrap().count(), 1);
    // client commands: a malformed flag is refused before anything is sent, and a daemon that does
    // not run is named as the reason (nothing listens on the API address in this test)
    let e = fail(entente(
        &home,
        &pw,
        &[
            "propose",
            "tictactoe",
            "--participant",
            "0x01",
            "--deposit",
            "1",
            "--timing",
            "1,2",
        ],
    ));
    assert!(e.contains("--timing"), "{e}");
    let e = fail(entente(&home, &pw, &["channels", "--api", "ws://127.0.0.1:9"]));
    assert!(e.contains("cannot reach the daemon"), "{e}");
}
