//! Sends an audit log to `kaq serve` as the API server's webhook backend would, and measures how
//! fast it is acknowledged and stored (BENCHMARKS.md, "kaq serve").
//!
//! ```text
//! kaq serve --store /tmp/s --listen 127.0.0.1:8080 &
//! cargo run --release -p kaq-serve --example webhook_load -- audit.log 127.0.0.1:8080 8 500
//! ```
//!
//! Arguments: a JSON-lines log, the server's address, senders (connections, kept alive), events a
//! batch. Prints events, batches, seconds until every batch was acknowledged, and until the store
//! held every event (`kaq_store_rows` on /metrics; the store must start empty).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: webhook_load LOG ADDR [SENDERS] [BATCH]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[2].parse().expect("an address");
    let senders: usize = args.get(3).map_or(8, |s| s.parse().expect("a number"));
    let batch: usize = args.get(4).map_or(500, |s| s.parse().expect("a number"));
    let text = std::fs::read_to_string(&args[1]).expect("the log is readable");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let bodies: Vec<Vec<u8>> = lines
        .chunks(batch)
        .map(|c| {
            format!(
                r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
                c.join(",")
            )
            .into_bytes()
        })
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let started = Instant::now();
    std::thread::scope(|s| {
        for k in 0..senders {
            let bodies = &bodies;
            s.spawn(move || {
                let mut conn = Conn::open(addr);
                for b in bodies.iter().skip(k).step_by(senders) {
                    loop {
                        match conn.post(addr, b) {
                            200 => break,
                            429 | 503 => std::thread::sleep(Duration::from_millis(50)),
                            code => panic!("answered {code}"),
                        }
                    }
                }
            });
        }
    });
    let acked = started.elapsed().as_secs_f64();
    let want = lines.len() as u64;
    loop {
        if rows(addr) >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stored = started.elapsed().as_secs_f64();
    println!(
        "{} events in {} batches ({:.1} MB) from {senders} senders: acknowledged in {acked:.2}s ({:.0} events/s), stored in {stored:.2}s ({:.0} events/s)",
        lines.len(),
        bodies.len(),
        bytes as f64 / 1e6,
        lines.len() as f64 / acked,
        lines.len() as f64 / stored
    );
}

/// A kept-alive HTTP/1.1 connection.
struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connects");
        s.set_nodelay(true).unwrap();
        Conn { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }

    fn post(&mut self, addr: SocketAddr, body: &[u8]) -> u16 {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.w.write_all(head.as_bytes()).unwrap();
        self.w.write_all(body).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let code: u16 = line.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
        let mut len = 0;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        code
    }
}

fn rows(addr: SocketAddr) -> u64 {
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines().find_map(|l| l.strip_prefix("kaq_store_rows ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}
