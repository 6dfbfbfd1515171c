use std::time::Instant;
use portal::store::Store;
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}/p.db", dir.path().display());
    let s = Store::open(&url).await.unwrap();
    let n = 3000;
    let t = Instant::now();
    for _ in 0..n { s.audit("a", "b", "c", "d", 1).await.unwrap(); }
    println!("seq audit: {:.1} us", t.elapsed().as_micros() as f64 / n as f64);
    let t = Instant::now();
    for _ in 0..n { s.session("x", 1).await.unwrap(); }
    println!("seq session read: {:.1} us", t.elapsed().as_micros() as f64 / n as f64);
    for c in [2, 4, 8] {
        let t = Instant::now();
        let mut h = vec![];
        for _ in 0..c { let s = s.clone(); h.push(tokio::spawn(async move { for _ in 0..n / c { s.audit("a", "b", "c", "d", 1).await.unwrap(); } })); }
        for x in h { x.await.unwrap(); }
        println!("{c} tasks audit: {:.1} us/op", t.elapsed().as_micros() as f64 / n as f64);
    }
}
#[allow(dead_code)]
async fn direct() {}
