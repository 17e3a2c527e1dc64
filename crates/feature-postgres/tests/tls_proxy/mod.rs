//! A TLS terminator for tests, in front of a real server that speaks no TLS: a private CA and
//! a server certificate for `127.0.0.1` and `localhost` are made at run time, and every
//! connection to the proxy's loopback port is decrypted and forwarded to the server.
//!
//! For PostgreSQL the client first sends an `SSLRequest` (length 8, code 80877103) in clear
//! text; the proxy answers `S` itself, does the handshake, and forwards what follows (the
//! client's startup message) to the server as a plain connection.
//!
//! Used by the TLS tests of feature-postgres and feature-redis.
#![allow(dead_code, unreachable_pub)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The PostgreSQL `SSLRequest` code.
const SSL_REQUEST: u32 = 80_877_103;

/// A certificate authority made for one test, and a server certificate it signed.
pub struct TestPki {
    /// The CA's certificate, PEM: what a client must trust.
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl TestPki {
    /// A new CA (named `name`) and a server certificate for `127.0.0.1` and `localhost`.
    pub fn new(name: &str) -> TestPki {
        TestPki::for_hosts(name, &["127.0.0.1", "localhost"])
    }

    /// A new CA (named `name`) and a server certificate for `hosts` only.
    pub fn for_hosts(name: &str, hosts: &[&str]) -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut leaf =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .expect("server params");
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
        TestPki {
            ca_pem: ca_cert.pem(),
            server_chain: vec![cert.der().clone()],
            server_key: key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)
            .expect("server certificate and key");
        Arc::new(config)
    }
}

/// What the proxy expects before the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TLS from the first byte (Redis `rediss://`).
    Tls,
    /// PostgreSQL: an `SSLRequest`, answered `S`, then TLS.
    Postgres,
}

/// A running TLS terminator; stops when dropped.
pub struct TlsProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on a free loopback port and forwards decrypted connections to `upstream`.
    pub async fn start(pki: &TestPki, protocol: Protocol, upstream: SocketAddr) -> TlsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let acceptor = TlsAcceptor::from(pki.server_config());
        let handshakes = Arc::new(AtomicUsize::new(0));
        let done = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let _ = serve(client, acceptor, protocol, upstream, &done).await;
                });
            }
        });
        TlsProxy {
            addr,
            handshakes,
            task,
        }
    }

    /// How many TLS handshakes completed: proof that clients really spoke TLS.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    acceptor: TlsAcceptor,
    protocol: Protocol,
    upstream: SocketAddr,
    handshakes: &AtomicUsize,
) -> std::io::Result<()> {
    if protocol == Protocol::Postgres {
        let mut request = [0u8; 8];
        client.read_exact(&mut request).await?;
        let length = u32::from_be_bytes([request[0], request[1], request[2], request[3]]);
        let code = u32::from_be_bytes([request[4], request[5], request[6], request[7]]);
        if length != 8 || code != SSL_REQUEST {
            // A client that does not ask for TLS is refused: the test is about TLS.
            return Ok(());
        }
        client.write_all(b"S").await?;
    }
    let mut tls = acceptor.accept(client).await?;
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut server = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
    Ok(())
}
