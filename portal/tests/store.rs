//! The store against both backends: an embedded SQLite file always, and a real PostgreSQL
//! server when `UKEY_TEST_POSTGRES` names one (an admin URL; each test gets a database of its
//! own). Under CI=true PostgreSQL must be there.

mod common;

use portal::store::{CertRecord, Challenge, Session, Store, StoreError};

const NOW: i64 = 1_790_000_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Run `f` on a SQLite store and, when available, a PostgreSQL store.
fn both<F, Fut>(f: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    common::on_each_backend(|url| {
        let f = &f;
        async move { f(Store::open(&url).await.unwrap()).await }
    });
}

fn cert(fp: &str, not_after: i64) -> CertRecord {
    CertRecord {
        fingerprint: fp.into(),
        serial: "01".into(),
        subject: "CN=Zhang San".into(),
        not_before: NOW - 10,
        not_after,
        der_b64: "MA==".into(),
        revoked_at: None,
        revoke_reason: None,
    }
}

#[test]
fn users_are_unique_and_wrong_passwords_count_per_client() {
    both(|s| async move {
        let e = s.create_enterprise("示例科技有限公司", "91110000600037341L", NOW).await.unwrap();
        let err = s.create_enterprise("again", "91110000600037341L", NOW).await.unwrap_err();
        assert!(matches!(err, StoreError::Exists { .. }), "{err}");
        let u = s.create_user(&e.id, "zhangsan", "张三", "$argon2id$x", NOW).await.unwrap();
        assert!(matches!(s.create_user(&e.id, "zhangsan", "x", "h", NOW).await, Err(StoreError::Exists { .. })));
        assert_eq!(s.user_by_name("zhangsan").await.unwrap().unwrap(), u);
        assert_eq!(s.user_by_name("nobody").await.unwrap(), None);

        assert_eq!(s.enterprise(&e.id).await.unwrap().unwrap().credit_code, "91110000600037341L");

        // Wrong passwords count per (username, client), known username or not.
        let delay = |n: i64| if n > 2 { 10 * n } else { 0 };
        for n in 1..=2 {
            let f = s.record_password_failure("zhangsan", "ip:a", delay, NOW).await.unwrap();
            assert_eq!((f.failures, f.blocked_until), (n, 0));
        }
        let f = s.record_password_failure("zhangsan", "ip:a", delay, NOW).await.unwrap();
        assert_eq!((f.failures, f.blocked_until), (3, NOW + 30));
        assert_eq!(s.password_delay("zhangsan", "ip:a").await.unwrap(), NOW + 30);
        assert_eq!(s.password_delay("zhangsan", "ip:b").await.unwrap(), 0, "another client");
        assert_eq!(s.record_password_failure("nobody", "ip:a", delay, NOW).await.unwrap().failures, 1);
        s.clear_password_failures("zhangsan", "ip:a").await.unwrap();
        assert_eq!(s.password_delay("zhangsan", "ip:a").await.unwrap(), 0);
        assert_eq!(s.record_password_failure("zhangsan", "ip:a", delay, NOW).await.unwrap().failures, 1);
        assert_eq!(s.purge_password_failures(NOW + 1).await.unwrap(), 2);
    });
}

#[test]
fn bind_list_and_unbind_stay_inside_the_enterprise() {
    both(|s| async move {
        let e = s.create_enterprise("A", "91110000600037341L", NOW).await.unwrap();
        let other = s.create_enterprise("B", "91350100M000100Y43", NOW).await.unwrap();
        let u = s.create_user(&e.id, "u", "U", "h", NOW).await.unwrap();
        let a1 = s.create_account(&e.id, "财务账号", NOW).await.unwrap();
        let a2 = s.create_account(&e.id, "申报账号", NOW).await.unwrap();
        let foreign = s.create_account(&other.id, "外部账号", NOW).await.unwrap();
        s.add_certificate(&cert("fp1", NOW + 86_400), NOW).await.unwrap();

        let list = s.accounts(&e.id).await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|a| a.bound_to.is_empty()), "nothing bound yet");

        assert_eq!(s.bind(&u, &[a1.id.clone(), a2.id.clone()], "fp1", NOW).await.unwrap(), 2);
        assert_eq!(
            s.bind(&u, std::slice::from_ref(&a1.id), "fp1", NOW).await.unwrap(),
            0,
            "binding twice adds nothing"
        );
        let list = s.accounts(&e.id).await.unwrap();
        assert!(list.iter().all(|a| a.bound_to == vec!["fp1".to_string()]));
        let names: Vec<String> = s.bound_accounts("fp1").await.unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(names.len(), 2);

        // Another enterprise's account cannot be bound, and nothing of the request happens.
        let err = s.bind(&u, &[a1.id.clone(), foreign.id.clone()], "fp1", NOW).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert!(s.accounts(&other.id).await.unwrap()[0].bound_to.is_empty());

        assert_eq!(s.unbind(&u, &[a1.id.clone(), foreign.id.clone()]).await.unwrap(), 1);
        let left = s.bound_accounts("fp1").await.unwrap();
        assert_eq!(left, vec![a2.clone()]);
        // The login path reads the same in one statement, with the revocation.
        let standing = s.key_standing("fp1").await.unwrap().unwrap();
        assert_eq!((standing.accounts, standing.revoked_at), (vec![a2.clone()], None));
        assert_eq!(s.unbind(&u, std::slice::from_ref(&a2.id)).await.unwrap(), 1);
        assert!(s.bound_accounts("fp1").await.unwrap().is_empty());
        assert!(s.key_standing("fp1").await.unwrap().unwrap().accounts.is_empty(), "known, bound to nothing");
        assert!(s.key_standing("no-such-fp").await.unwrap().is_none());
    });
}

#[test]
fn certificates_revoke_once() {
    both(|s| async move {
        s.add_certificate(&cert("fp", NOW + 10), NOW).await.unwrap();
        assert!(matches!(s.add_certificate(&cert("fp", NOW), NOW).await, Err(StoreError::Exists { .. })));
        assert!(s.revoke("fp", "keyCompromise", NOW + 1).await.unwrap());
        assert!(!s.revoke("fp", "superseded", NOW + 2).await.unwrap(), "already revoked");
        let c = s.certificate("fp").await.unwrap().unwrap();
        assert_eq!((c.revoked_at, c.revoke_reason.as_deref()), (Some(NOW + 1), Some("keyCompromise")));
        assert!(matches!(s.revoke("nope", "x", NOW).await, Err(StoreError::NotFound { .. })));
    });
}

fn session(hash: &str) -> Session {
    Session {
        token_hash: hash.into(),
        user_id: None,
        account_id: None,
        csrf: "csrf".into(),
        expires_at: NOW + 3600,
        challenge: None,
    }
}

fn challenge(nonce: &str) -> Challenge {
    Challenge { nonce: nonce.into(), origin: "https://portal.example".into(), expires_at: NOW + 300 }
}

#[test]
fn a_challenge_is_spent_exactly_once_even_by_racing_spenders() {
    both(|s| async move {
        s.put_session(&session("sess"), NOW).await.unwrap();
        assert!(!s.put_challenge("no-such-session", &challenge("n0")).await.unwrap());
        assert!(s.put_challenge("sess", &challenge("n1")).await.unwrap());
        let held = s.session("sess", NOW).await.unwrap().unwrap().challenge;
        assert_eq!(held, Some(challenge("n1")));
        // Half the racers spend it alone (bind), half rotating the session (key login).
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        s.spend_challenge("sess", "n1").await.unwrap()
                    } else {
                        let new = Session { account_id: Some(format!("acc{i}")), ..session(&format!("new{i}")) };
                        s.rotate_session_spending("sess", "n1", &new).await.unwrap()
                    }
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            won += r.await.unwrap() as usize;
        }
        assert_eq!(won, 1, "one spender wins");
        // The session is under its old token (a lone spender won) or one racer's new token.
        let mut left = Vec::new();
        for hash in std::iter::once("sess".to_string()).chain((1..8).step_by(2).map(|i| format!("new{i}"))) {
            left.extend(s.session(&hash, NOW).await.unwrap());
        }
        assert_eq!(left.len(), 1, "one session, under one token");
        assert_eq!(left[0].challenge, None, "spent");
    });
}

#[test]
fn expired_sessions_are_purged_with_their_challenges() {
    both(|s| async move {
        s.put_session(&Session { expires_at: NOW, ..session("old") }, NOW - 3600).await.unwrap();
        s.put_session(&session("live"), NOW).await.unwrap();
        s.put_challenge("old", &challenge("n-old")).await.unwrap();
        assert_eq!(s.purge_sessions(NOW).await.unwrap(), 1);
        assert!(!s.spend_challenge("old", "n-old").await.unwrap(), "gone with its session");
        assert!(s.session("live", NOW).await.unwrap().is_some());
        assert_eq!(s.purge_sessions(NOW).await.unwrap(), 0);
    });
}

#[test]
fn a_new_challenge_replaces_the_last_and_rotation_drops_it() {
    both(|s| async move {
        s.put_session(&session("s1"), NOW).await.unwrap();
        s.put_challenge("s1", &challenge("old")).await.unwrap();
        s.put_challenge("s1", &challenge("new")).await.unwrap();
        assert!(!s.spend_challenge("s1", "old").await.unwrap(), "replaced");
        assert!(!s.rotate_session_spending("s1", "old", &session("s2")).await.unwrap(), "replaced");
        assert!(s.session("s1", NOW).await.unwrap().is_some(), "a refused rotation changes nothing");
        assert!(s.spend_challenge("s1", "new").await.unwrap());
        assert!(!s.spend_challenge("s1", "new").await.unwrap(), "spent");
        s.put_challenge("s1", &challenge("third")).await.unwrap();
        assert!(s.rotate_session("s1", &session("s3")).await.unwrap());
        assert_eq!(s.session("s3", NOW).await.unwrap().unwrap().challenge, None, "a login drops the challenge");
    });
}

#[test]
fn audit_rows_written_at_the_same_time_are_all_stored() {
    both(|s| async move {
        // Many at once: they are written in groups, each caller returning once its row is in.
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(
                    async move { s.audit(&format!("user{i}"), "bind", "ok", &format!("row {i}"), NOW + i).await },
                )
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        let rows = s.audit_tail(500).await.unwrap();
        assert_eq!(rows.len(), 200);
        for (k, r) in rows.iter().enumerate() {
            let i = 199 - k as i64;
            assert_eq!((r.at, r.actor.clone(), r.detail.clone()), (NOW + i, format!("user{i}"), format!("row {i}")));
        }
    });
}

#[test]
fn audit_rows_come_back_newest_first() {
    both(|s| async move {
        s.audit("zhangsan", "password_login", "ok", "", NOW).await.unwrap();
        s.audit("zhangsan", "bind", "ok", "accounts=2", NOW + 1).await.unwrap();
        s.audit("-", "key_login", "refused", "nonce replayed", NOW + 2).await.unwrap();
        let rows = s.audit_tail(2).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].action.as_str(), rows[0].outcome.as_str()), ("key_login", "refused"));
        assert_eq!(rows[1].detail, "accounts=2");
    });
}

#[test]
fn urls_are_checked_and_the_sqlite_file_is_created_and_reopened() {
    rt().block_on(async {
        assert!(matches!(Store::open("mysql://x").await, Err(StoreError::BadUrl(_))));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let url = format!("sqlite:{}", path.display());
        let s = Store::open(&url).await.unwrap();
        let e = s.create_enterprise("A", "91110000600037341L", NOW).await.unwrap();
        drop(s);
        assert!(path.exists());
        let s = Store::open(&url).await.unwrap();
        assert!(matches!(s.create_enterprise("A", &e.credit_code, NOW).await, Err(StoreError::Exists { .. })));
    });
}

#[test]
fn the_sqlite_wal_is_checkpointed_into_the_database_file_in_the_background() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let s = Store::open(&format!("sqlite:{}", path.display())).await.unwrap();
        // Past the checkpoint the task makes as it starts.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        s.create_enterprise("A", "91110000600037341L", NOW).await.unwrap();
        s.audit("zhangsan", "bind", "ok", "after the enterprise", NOW).await.unwrap();
        // Commits go to the WAL; the checkpoint task (once a second) copies them into the
        // database file. A copy of that file alone, without its WAL, must hold them.
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let c = Store::open(&format!("sqlite:{}", copy.display())).await.unwrap();
        assert!(matches!(c.create_enterprise("A", "91110000600037341L", NOW).await, Err(StoreError::Exists { .. })));
        assert_eq!(c.audit_tail(5).await.unwrap()[0].detail, "after the enterprise");
        drop(s);
    });
}

#[test]
fn request_counts_are_shared_by_racing_instances_and_restart_each_minute() {
    both(|s| async move {
        let minute = NOW / 60;
        // 40 concurrent requests, as if from several instances: every one counted once.
        let racers: Vec<_> = (0..40)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.count_request("challenge", "client-a", minute).await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for r in racers {
            seen.push(r.await.unwrap());
        }
        seen.sort();
        assert_eq!(seen, (1..=40).collect::<Vec<i64>>(), "each request got its own count");
        assert_eq!(s.count_request("challenge", "client-b", minute).await.unwrap(), 1, "another client");
        assert_eq!(s.count_request("bind", "client-a", minute).await.unwrap(), 1, "another action");
        assert_eq!(
            s.count_request("challenge", "client-a", minute - 1).await.unwrap(),
            41,
            "an instance whose clock lags counts into the current minute"
        );
        assert_eq!(s.count_request("challenge", "client-a", minute + 1).await.unwrap(), 1, "next minute");
        assert_eq!(s.purge_rate_limits(minute + 1).await.unwrap(), 2, "the two rows still in the old minute");
        assert_eq!(s.count_request("challenge", "client-a", minute + 1).await.unwrap(), 2, "kept");
    });
}
