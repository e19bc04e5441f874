//! TLS as libchirp 1.2 speaks it, sans-I/O: [`Secured`] wraps any stream endpoint
//! (here the chirp [`Connection`](crate::conn::Connection)) and runs OpenSSL over
//! memory buffers, so the driver below and the endpoint above are unchanged.
//!
//! libchirp's settings (`src/encryption.c`), reproduced by [`TlsContext`]: TLS ≥ 1.2
//! (OpenSSL's `TLS_method` with a 1.2 minimum, so OpenSSL 3 negotiates 1.3); both sides
//! present a certificate and verify the peer's against the CA in the same PEM file
//! (`SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT`, depth 5, no host name check);
//! that file holds the node's certificate chain and its private key; DH parameters
//! from `DH_PARAMS_PEM`; no compression; for TLS 1.2 the cipher list
//! `-ALL:DHE-DSS-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-SHA256:DHE-DSS-AES256-SHA256:`.
//! The chirp handshake goes inside TLS, after the TLS handshake.
//!
//! Which connections are encrypted is libchirp's rule too ([`encrypts`]): all, unless
//! encryption is disabled or the peer's address is exactly 127.0.0.1 or ::1 (another
//! 127.x address is encrypted).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use openssl::dh::Dh;
use openssl::ssl::{ErrorCode, Ssl, SslContext, SslMethod, SslMode, SslOptions, SslStream, SslVerifyMode, SslVersion};
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};

/// libchirp's TLS 1.2 cipher list: four DHE-AES256 suites and nothing else.
pub const CIPHER_LIST: &str =
    "-ALL:DHE-DSS-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-SHA256:DHE-DSS-AES256-SHA256:";

/// Largest plaintext pulled from the inner endpoint per transmit: one TLS record.
const RECORD: usize = 16 * 1024;

/// TLS could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed, or OpenSSL refused a setting.
    #[error("{what}: {detail}")]
    Setup {
        /// What was being done.
        what: String,
        /// OpenSSL's or the OS's message.
        detail: String,
    },
}

fn setup(what: impl Into<String>) -> impl FnOnce(openssl::error::ErrorStack) -> TlsError {
    let what = what.into();
    move |e| TlsError::Setup { what, detail: e.to_string() }
}

/// libchirp's rule: encrypt unless disabled or the peer is 127.0.0.1 or ::1 exactly
/// (`ch_is_local_addr` compares the address text), or `always` (libchirp's
/// `ch_chirp_set_always_encrypt`) is set.
pub fn encrypts(peer: IpAddr, disabled: bool, always: bool) -> bool {
    if disabled {
        return false;
    }
    always || !(peer == IpAddr::V4(Ipv4Addr::LOCALHOST) || peer == IpAddr::V6(Ipv6Addr::LOCALHOST))
}

/// A node's TLS settings, made once at start.
#[derive(Clone)]
pub struct TlsContext {
    context: SslContext,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsContext")
    }
}

impl TlsContext {
    /// libchirp's context from `cert_chain` (the CA, this node's certificate chain and
    /// its private key, in one PEM file) and `dh_params` (PEM DH parameters).
    ///
    /// # Errors
    /// A file is missing or malformed, or the key does not match the certificate.
    pub fn from_files(cert_chain: &Path, dh_params: &Path) -> Result<Self, TlsError> {
        let mut builder = SslContext::builder(SslMethod::tls()).map_err(setup("TLS context"))?;
        builder.set_mode(SslMode::AUTO_RETRY | SslMode::ENABLE_PARTIAL_WRITE);
        builder.set_options(SslOptions::NO_COMPRESSION);
        builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        builder.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(setup("TLS 1.2 minimum"))?;
        builder.set_verify_depth(5);
        let chain = cert_chain.display();
        builder.set_ca_file(cert_chain).map_err(setup(format!("CA from {chain}")))?;
        builder.set_certificate_chain_file(cert_chain).map_err(setup(format!("certificate chain {chain}")))?;
        builder
            .set_private_key_file(cert_chain, openssl::ssl::SslFiletype::PEM)
            .map_err(setup(format!("private key from {chain}")))?;
        builder.check_private_key().map_err(setup(format!("private key of {chain}")))?;
        let pem = std::fs::read(dh_params).map_err(|e| TlsError::Setup {
            what: format!("DH parameters {}", dh_params.display()),
            detail: e.to_string(),
        })?;
        let dh = Dh::params_from_pem(&pem).map_err(setup(format!("DH parameters {}", dh_params.display())))?;
        builder.set_tmp_dh(&dh).map_err(setup("DH parameters"))?;
        builder.set_cipher_list(CIPHER_LIST).map_err(setup("cipher list"))?;
        Ok(TlsContext { context: builder.build() })
    }

    /// A session for one connection: `accept` for the side that accepted it.
    ///
    /// # Errors
    /// OpenSSL could not make the session.
    pub fn session(&self, accept: bool) -> Result<TlsSession, TlsError> {
        let mut ssl = Ssl::new(&self.context).map_err(setup("TLS session"))?;
        if accept {
            ssl.set_accept_state();
        } else {
            ssl.set_connect_state();
        }
        let stream = SslStream::new(ssl, MemoryPipe::default()).map_err(setup("TLS stream"))?;
        Ok(TlsSession { stream, established: false, plain: BytesMut::new(), read_buf: Vec::new() })
    }
}

/// OpenSSL's transport: ciphertext in from the socket, ciphertext out to it.
#[derive(Default)]
struct MemoryPipe {
    incoming: BytesMut,
    outgoing: BytesMut,
}

impl Read for MemoryPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.incoming.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.incoming.len());
        buf[..n].copy_from_slice(&self.incoming[..n]);
        self.incoming.advance(n);
        Ok(n)
    }
}

impl Write for MemoryPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection's TLS state.
pub struct TlsSession {
    stream: SslStream<MemoryPipe>,
    established: bool,
    /// The inner endpoint's plaintext, before encryption (reused).
    plain: BytesMut,
    /// Decrypted input (reused).
    read_buf: Vec<u8>,
}

impl TlsSession {
    /// True once the TLS handshake completed.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The negotiated protocol version and cipher, for logs and tests.
    pub fn negotiated(&self) -> Option<(String, String)> {
        if !self.established {
            return None;
        }
        let ssl = self.stream.ssl();
        let cipher = ssl.current_cipher().map(|c| c.name().to_string()).unwrap_or_default();
        Some((ssl.version_str().to_string(), cipher))
    }

    /// Advance the handshake; `Err` is fatal.
    fn handshake(&mut self) -> Result<(), String> {
        if self.established {
            return Ok(());
        }
        match self.stream.do_handshake() {
            Ok(()) => {
                self.established = true;
                let ssl = self.stream.ssl();
                let cipher = ssl.current_cipher().map_or("?", |c| c.name());
                tracing::debug!(version = ssl.version_str(), cipher, "TLS established");
                Ok(())
            }
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => Ok(()),
            Err(e) => Err(format!("TLS handshake failed: {e}")),
        }
    }
}

/// A stream endpoint, encrypted or not. Without a session it is the inner endpoint.
pub struct Secured<E> {
    inner: E,
    tls: Option<TlsSession>,
    close: Option<CloseReason>,
}

impl<E: StreamEndpoint> Secured<E> {
    /// `inner` in the clear.
    pub fn plain(inner: E) -> Self {
        Secured { inner, tls: None, close: None }
    }

    /// `inner` over `session`.
    pub fn encrypted(inner: E, session: TlsSession) -> Self {
        Secured { inner, tls: Some(session), close: None }
    }

    /// The endpoint inside.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The endpoint inside.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// The TLS session, if encrypted.
    pub fn session(&self) -> Option<&TlsSession> {
        self.tls.as_ref()
    }

    fn fail(&mut self, why: String) {
        if self.close.is_none() {
            tracing::debug!("closing: {why}");
            self.close = Some(CloseReason::Protocol(why));
        }
    }
}

impl<E: StreamEndpoint> StreamEndpoint for Secured<E> {
    type Event = E::Event;

    fn handle_connected(&mut self, now: Instant) {
        self.inner.handle_connected(now);
        if let Some(session) = &mut self.tls
            && let Err(why) = session.handshake()
        {
            self.fail(why);
        }
    }

    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let Some(session) = &mut self.tls else { return self.inner.handle_input(now, data) };
        if self.close.is_some() {
            return;
        }
        session.stream.get_mut().incoming.extend_from_slice(data);
        if let Err(why) = session.handshake() {
            return self.fail(why);
        }
        if !session.established {
            return;
        }
        // Decrypt all that arrived: the plaintext is at most what one read brought,
        // and the inner endpoint bounds what it keeps (the driver stops reading when
        // it wants no more).
        let mut buf = std::mem::take(&mut session.read_buf);
        buf.resize(RECORD, 0);
        let mut failure = None;
        loop {
            match session.stream.ssl_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.inner.handle_input(now, &buf[..n]),
                Err(e) if e.code() == ErrorCode::WANT_READ => break,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    failure = Some(CloseReason::PeerClosed);
                    break;
                }
                Err(e) => {
                    failure = Some(CloseReason::Protocol(format!("TLS: {e}")));
                    break;
                }
            }
        }
        if let Some(session) = &mut self.tls {
            session.read_buf = buf;
        }
        if let Some(reason) = failure
            && self.close.is_none()
        {
            self.close = Some(reason);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, room: usize, out: &mut BytesMut) {
        let Some(session) = &mut self.tls else { return self.inner.poll_transmit(now, room, out) };
        if self.close.is_some() {
            return;
        }
        if session.established {
            session.plain.clear();
            self.inner.poll_transmit(now, room.min(RECORD * 4), &mut session.plain);
            let mut written = 0;
            while written < session.plain.len() {
                match session.stream.ssl_write(&session.plain[written..]) {
                    Ok(n) => written += n,
                    Err(e) => {
                        let why = format!("TLS write: {e}");
                        self.fail(why);
                        return;
                    }
                }
            }
        }
        let pipe = &mut session.stream.get_mut().outgoing;
        if !pipe.is_empty() {
            out.extend_from_slice(pipe);
            pipe.clear();
        }
    }

    fn poll_event(&mut self) -> Option<E::Event> {
        self.inner.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take().or_else(|| self.inner.poll_close())
    }

    fn wants_input(&self) -> bool {
        self.inner.wants_input()
    }

    fn handle_closed(&mut self, now: Instant, reason: &CloseReason) {
        self.inner.handle_closed(now, reason);
    }
}
