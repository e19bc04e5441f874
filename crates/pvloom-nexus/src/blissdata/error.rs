use std::time::Duration;

/// What went wrong talking to blissdata's Redis.
#[derive(Debug, thiserror::Error)]
pub enum BlissError {
    /// The URL does not parse, or names no Redis.
    #[error("bad Redis URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// Redis could not be reached or stopped answering.
    #[error("Redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    /// Redis was unreachable for longer than the reconnect window.
    #[error("Redis at {url} unreachable for {:.1} s: {last}", .after.as_secs_f64())]
    Unreachable { url: String, after: Duration, last: String },
    /// The database is not set up for blissdata (no or another protocol version).
    #[error("Redis at {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// Something in Redis does not have blissdata's layout.
    #[error("{key}: {reason}")]
    Malformed { key: String, reason: String },
    /// The events handed to the publisher are out of order or inconsistent.
    #[error("publisher: {0}")]
    BadEvent(String),
}

impl BlissError {
    pub(crate) fn malformed(key: impl Into<String>, reason: impl Into<String>) -> BlissError {
        BlissError::Malformed { key: key.into(), reason: reason.into() }
    }

    /// Whether the error is the connection's (worth a reconnect), not the data's. A Redis
    /// still loading its data after a restart (`LOADING`) counts: it answers soon.
    pub fn is_connection(&self) -> bool {
        match self {
            BlissError::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
            }
            BlissError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_error(source: redis::RedisError) -> BlissError {
        BlissError::Redis { url: "redis://127.0.0.1:1".into(), source }
    }

    #[test]
    fn a_loading_redis_is_worth_a_retry_a_bad_reply_is_not() {
        let loading = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading),
            "Redis is loading the dataset in memory",
        ));
        assert!(redis_error(loading).is_connection());
        let wrong =
            redis::RedisError::from((redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError), "WRONGTYPE"));
        assert!(!redis_error(wrong).is_connection());
        assert!(!BlissError::malformed("k", "bad").is_connection());
    }
}
