use log_core::*;
fn main() {
    let case = std::env::args().nth(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = u64::MAX;
    let mut store = Vec::new();
    if case == "frame" {
        encode_frame(&Record::new(b"x".to_vec()), base, &mut store);
    }
    std::fs::write(dir.path().join(format!("{base:020}.store")), &store).unwrap();
    let log = Log::open(dir.path(), Config::default());
    match &log { Ok(l) => eprintln!("open ok: lowest {} next {}", l.lowest_offset(), l.next_offset()), Err(e) => eprintln!("open err: {e}") }
    let log = log.unwrap();
    let r = log.append(&Record::new(b"hello".to_vec()));
    eprintln!("append -> {r:?}; lowest {} next {}", log.lowest_offset(), log.next_offset());
    if let Ok(o) = r { eprintln!("read({o}) -> {:?}", log.read(o).map(|r| r.offset)); }
    eprintln!("close -> {:?}", log.close());
    drop(log);
    match Log::open(dir.path(), Config::default()) { Ok(l) => eprintln!("reopen ok: lowest {} next {}", l.lowest_offset(), l.next_offset()), Err(e) => eprintln!("reopen err: {e}") }
}
