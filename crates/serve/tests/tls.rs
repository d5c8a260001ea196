//! HTTPS: `--tls-cert/--tls-key` with a certificate made here (rcgen), and a rustls client that
//! trusts only it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"AID","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/secrets/db","verb":"get","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-01-02T03:04:05.000000Z","stageTimestamp":"2026-01-02T03:04:05.100000Z"}"#;

fn request(tls: Option<&Arc<rustls::ClientConfig>>, addr: SocketAddr, req: &str) -> std::io::Result<String> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut raw = Vec::new();
    match tls {
        Some(cfg) => {
            let conn = rustls::ClientConnection::new(cfg.clone(), "localhost".try_into().unwrap()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, sock);
            s.write_all(req.as_bytes())?;
            // A server closing without close_notify is an error to rustls: keep what was read.
            if let Err(e) = s.read_to_end(&mut raw)
                && raw.is_empty()
            {
                return Err(e);
            }
        }
        None => {
            let mut s = sock;
            s.write_all(req.as_bytes())?;
            let _ = s.read_to_end(&mut raw);
        }
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
}

#[test]
fn serves_https_with_the_given_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();

    let mut cfg = kaq_serve::Config::new(dir.path().join("store"), "127.0.0.1:0".parse().unwrap());
    cfg.tls = Some((cert, key));
    cfg.token = Some("tls-token".into());
    cfg.commit_every = Duration::from_millis(100);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || kaq_serve::run(cfg, move |addr| tx.send(addr).unwrap()));
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server listens");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let trusting = Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth());

    let body = format!(r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{EVENT}]}}"#);
    let post = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tls-token\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = request(Some(&trusting), addr, &post).unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Searchable once committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = request(Some(&trusting), addr, &get("/api/query?q=user:alice", "tls-token")).unwrap();
        if r.contains("\"auditID\":\"AID\"") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"auditID\":\"AID\""), "{r}");
    // The token is still required over TLS.
    let r = request(Some(&trusting), addr, &get("/api/query?q=*", "wrong")).unwrap();
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let r = request(None, addr, &get("/healthz", "tls-token")).unwrap_or_default();
    assert!(!r.starts_with("HTTP/1.1 200"), "{r}");
    // A client that does not trust the certificate cannot connect.
    let strangers = Arc::new(
        rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth(),
    );
    assert!(request(Some(&strangers), addr, &get("/healthz", "tls-token")).is_err());
}
