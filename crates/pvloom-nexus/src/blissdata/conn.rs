//! One blocking Redis connection, opened lazily and reopened after a failure.

use std::time::Duration;

use redis::{Client, Cmd, Connection, Pipeline, Value};

use super::BlissError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-blocking command may take to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The name our connections carry in `CLIENT LIST`, so an operator (or a test) can tell
/// the writer's connections from BLISS's own.
pub const CLIENT_NAME: &str = "pvloom-nexus";

/// Waits between reconnect attempts: doubling from `FIRST` up to `MAX`, reset once a
/// command succeeds, so a Redis that is down is tried a few times a second at most.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Backoff::FIRST }
    }

    /// The wait before the next attempt (and the one after it doubles).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }
}

pub(crate) struct Conn {
    url: String,
    client: Client,
    conn: Option<Connection>,
}

impl Conn {
    /// Parses the URL; does not connect yet.
    pub(crate) fn new(url: &str) -> Result<Conn, BlissError> {
        let client = Client::open(url).map_err(|e| BlissError::Url { url: url.to_owned(), reason: e.to_string() })?;
        Ok(Conn { url: url.to_owned(), client, conn: None })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, source: redis::RedisError) -> BlissError {
        BlissError::Redis { url: self.url.clone(), source }
    }

    fn connection(&mut self) -> Result<&mut Connection, BlissError> {
        if self.conn.is_none() {
            let mut conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT).map_err(|e| self.err(e))?;
            conn.set_write_timeout(Some(COMMAND_TIMEOUT)).map_err(|e| self.err(e))?;
            conn.set_read_timeout(Some(COMMAND_TIMEOUT)).map_err(|e| self.err(e))?;
            redis::cmd("CLIENT").arg("SETNAME").arg(CLIENT_NAME).query::<()>(&mut conn).map_err(|e| self.err(e))?;
            self.conn = Some(conn);
        }
        // Just set above when it was None.
        self.conn.as_mut().ok_or_else(|| BlissError::Protocol { url: String::new(), reason: "no connection".into() })
    }

    /// Runs one command; `block` is how long the server may hold the answer (XREAD BLOCK).
    pub(crate) fn query(&mut self, cmd: &Cmd, block: Duration) -> Result<Value, BlissError> {
        let conn = self.connection()?;
        let answer = conn.set_read_timeout(Some(COMMAND_TIMEOUT + block)).and_then(|()| cmd.query::<Value>(conn));
        self.check(answer)
    }

    /// Runs a pipeline (a MULTI/EXEC transaction when built with `atomic()`).
    pub(crate) fn pipe(&mut self, pipe: &Pipeline) -> Result<Value, BlissError> {
        let conn = self.connection()?;
        let answer = conn.set_read_timeout(Some(COMMAND_TIMEOUT)).and_then(|()| pipe.query::<Value>(conn));
        self.check(answer)
    }

    fn check(&mut self, answer: redis::RedisResult<Value>) -> Result<Value, BlissError> {
        match answer {
            Ok(Value::ServerError(e)) => Err(self.err(e.into())),
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
                    // The socket may be in the middle of an answer: never reuse it.
                    self.conn = None;
                }
                Err(self.err(e))
            }
        }
    }
}
