use proglog_fuzz::*;
fn main() {
    for p in std::env::args().skip(1) {
        let data = std::fs::read(&p).unwrap();
        let img = parse_dir_image(&data);
        println!("selector {} config {:?}", img.config_selector, config_for(img.config_selector));
        for (n, c) in &img.files { println!("  {n}: {} bytes: {:02x?}", c.len(), &c[..c.len().min(96)]); }
        let tmp = tempfile::tempdir().unwrap();
        for (n, c) in &img.files { std::fs::write(tmp.path().join(n), c).unwrap(); }
        match log_core::Log::open(tmp.path(), config_for(img.config_selector)) {
            Ok(l) => println!("-> lowest {} next {} segs {}", l.lowest_offset(), l.next_offset(), l.segment_count()),
            Err(e) => println!("-> ERR {e}"),
        }
    }
}
