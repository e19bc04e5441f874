//! One blocking Redis connection, opened lazily and reopened after a failure.

use std::time::Duration;

use redis::{Client, Cmd, Connection, Pipeline, Value};

use super::BlissError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-blocking command may take to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

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
            let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT).map_err(|e| self.err(e))?;
            conn.set_write_timeout(Some(COMMAND_TIMEOUT)).map_err(|e| self.err(e))?;
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
