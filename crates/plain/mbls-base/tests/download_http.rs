//! `download` against a tiny HTTP/1.1 server on 127.0.0.1 (std only, supports `Range`).

use mbls_base::download::{DownloadError, download, md5_file, part_path};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A server answering every GET with `body`; honours `Range: bytes=N-` unless `ranges` is false.
/// Returns the base URL and the list of the `Range` headers it saw (`None` = no header).
fn serve(body: Vec<u8>, ranges: bool) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            let mut line = String::new();
            // request line + headers
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            seen2.lock().unwrap().push(range.clone());
            let start = range
                .as_deref()
                .filter(|_| ranges)
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok());
            let response = match start {
                Some(s) if s < body.len() => {
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - s,
                        s,
                        body.len() - 1,
                        body.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(&body[s..]);
                    head
                }
                Some(_) => format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes(),
                None => {
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(&body);
                    head
                }
            };
            let _ = stream.write_all(&response);
            let _ = stream.flush();
        }
    });
    (format!("http://{addr}/archive.tar.gz"), seen)
}

fn payload() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn md5_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    md5_file(&p).unwrap()
}

#[test]
fn full_download_then_cached() {
    let body = payload();
    let md5 = md5_of(&body);
    let (url, seen) = serve(body.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub/archive.tar.gz");
    let got = download(&url, &dest, &md5.to_uppercase()).unwrap();
    assert_eq!(got, dest);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!part_path(&dest).exists());
    assert_eq!(seen.lock().unwrap().as_slice(), &[None]);
    // second call: file present with the right digest, no request
    download(&url, &dest, &md5).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn resumes_partial_file_with_range() {
    let body = payload();
    let md5 = md5_of(&body);
    let (url, seen) = serve(body.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive.tar.gz");
    std::fs::write(part_path(&dest), &body[..12_345]).unwrap();
    download(&url, &dest, &md5).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[Some("bytes=12345-".to_string())]
    );
}

#[test]
fn restarts_when_server_ignores_range() {
    let body = payload();
    let md5 = md5_of(&body);
    let (url, seen) = serve(body.clone(), false);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive.tar.gz");
    // a partial file with wrong bytes: must be replaced, not appended to
    std::fs::write(part_path(&dest), vec![0xAAu8; 5_000]).unwrap();
    download(&url, &dest, &md5).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[Some("bytes=5000-".to_string())]
    );
}

#[test]
fn complete_part_file_and_416() {
    let body = payload();
    let md5 = md5_of(&body);
    let (url, _seen) = serve(body.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive.tar.gz");
    std::fs::write(part_path(&dest), &body).unwrap();
    download(&url, &dest, &md5).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn checksum_mismatch_keeps_nothing() {
    let body = payload();
    let (url, _seen) = serve(body, true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive.tar.gz");
    let err = download(&url, &dest, "00000000000000000000000000000000").unwrap_err();
    match &err {
        DownloadError::Checksum { path, expected, .. } => {
            assert_eq!(path, &dest);
            assert_eq!(expected, "00000000000000000000000000000000");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists());
}

#[test]
fn wrong_existing_file_is_replaced() {
    let body = payload();
    let md5 = md5_of(&body);
    let (url, _seen) = serve(body.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive.tar.gz");
    std::fs::write(&dest, b"stale").unwrap();
    download(&url, &dest, &md5).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn connection_refused_says_offline() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("cifar-10-python.tar.gz");
    let url = format!("http://127.0.0.1:{port}/cifar-10-python.tar.gz");
    let err = download(&url, &dest, "c58f30108f718f92721af3b95e74349a").unwrap_err();
    let DownloadError::Download { message, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert!(message.contains("no network was reachable"), "{message}");
    assert!(message.contains(&dest.display().to_string()), "{message}");
    assert!(!dest.exists());
}
