//! Both storage backends for the portal's tests: a SQLite file always, and a fresh database on
//! the PostgreSQL server named by `UKEY_TEST_POSTGRES` (an admin URL) when set — required
//! under CI=true.
#![allow(dead_code)]

pub mod world;

use sqlx::Connection;

/// A database for one test; the PostgreSQL one is dropped by [`Db::finish`].
pub struct Db {
    pub url: String,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    drop: Option<(String, String)>,
}

impl Db {
    pub async fn finish(self) {
        if let Some((admin, db)) = &self.drop {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut conn).await.unwrap();
        }
    }
}

pub async fn databases() -> Vec<Db> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db {
        url: format!("sqlite:{}", dir.path().join("portal.db").display()),
        name: "sqlite",
        _dir: Some(dir),
        drop: None,
    };
    let mut out = vec![sqlite];
    match std::env::var("UKEY_TEST_POSTGRES") {
        Ok(admin) => {
            let db = format!("ukey_test_{}", portal::store::new_id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to UKEY_TEST_POSTGRES");
            sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await.unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
            out.push(Db { url: format!("{base}/{db}"), name: "postgres", _dir: None, drop: Some((admin, db)) });
        }
        Err(_) => {
            testsupport::skip(
                "a PostgreSQL server for the PostgreSQL half (UKEY_TEST_POSTGRES=postgres://user:pass@host/postgres)",
            );
        }
    }
    out
}

/// Run `f` once per backend.
pub fn on_each_backend<F, Fut>(f: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        for db in databases().await {
            eprintln!("-- on {}", db.name);
            f(db.url.clone()).await;
            db.finish().await;
        }
    });
}
