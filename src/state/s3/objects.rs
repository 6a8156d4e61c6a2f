//! The few S3 calls the state backend makes, on one bucket, with SDK errors
//! turned into [`StateError`]s that say what went wrong in user terms.
//!
//! Conditional writes are the backend's only concurrency primitive, so a
//! failed precondition (HTTP 412 `PreconditionFailed`, or 409
//! `ConditionalRequestConflict` when two conditional writes race on S3) is
//! an answer here, not an error: [`Bucket::put`] and [`Bucket::delete`]
//! return `None`/`false` for it and the caller decides what it means.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::state::StateError;

/// At most this many keys per `DeleteObjects` call (the S3 limit).
const DELETE_BATCH: usize = 1000;

/// One object as read: its bytes and its ETag (for `If-Match`).
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub body: Vec<u8>,
    pub etag: Option<String>,
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond<'a> {
    /// Only if no object exists under the key (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Matches(&'a str),
    /// Whatever is there.
    Any,
}

/// A bucket, with the client and region to reach it.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub client: aws_sdk_s3::Client,
    pub name: String,
    pub region: String,
}

/// Whether an SDK error is a failed precondition.
fn precondition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let status = err.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412 | 409))
        || matches!(
            err.code(),
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
}

fn not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("NoSuchKey")
        || (err.code() != Some("NoSuchBucket")
            && err.raw_response().map(|r| r.status().as_u16()) == Some(404))
}

impl Bucket {
    /// `s3://bucket/key`.
    pub(crate) fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    /// A [`StateError`] for a failed call `operation` on `key`: a missing
    /// bucket and a denied access get their own wording; anything else is
    /// an IO error carrying the SDK's full message.
    pub(crate) fn error<E>(
        &self,
        operation: &'static str,
        key: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let location = self.url(key);
        let status = err.raw_response().map(|r| r.status().as_u16());
        match err.code() {
            Some("NoSuchBucket") => StateError::Remote {
                message: format!(
                    "state bucket `{}` does not exist (region {})",
                    self.name, self.region
                ),
                location,
            },
            Some("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId")
            | Some("SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken") => {
                StateError::Remote {
                    message: format!(
                        "access to {location} denied: {}",
                        err.message().unwrap_or("no message")
                    ),
                    location,
                }
            }
            _ if status == Some(403) => StateError::Remote {
                message: format!("access to {location} denied (HTTP 403)"),
                location,
            },
            _ => StateError::Io {
                operation,
                location,
                message: DisplayErrorContext(err).to_string(),
            },
        }
    }

    /// The object under `key`, or `None` if there is none.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Object>, StateError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(self.error("read", key, &e)),
        };
        let etag = out.e_tag().map(str::to_string);
        let body = out.body.collect().await.map_err(|e| StateError::Io {
            operation: "read",
            location: self.url(key),
            message: e.to_string(),
        })?;
        Ok(Some(Object {
            body: body.into_bytes().to_vec(),
            etag,
        }))
    }

    /// The ETag of the object under `key` (empty if the store sent none),
    /// or `None` if there is none: a `HeadObject`, no body.
    pub(crate) async fn etag(&self, key: &str) -> Result<Option<String>, StateError> {
        match self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.error("read", key, &e)),
        }
    }

    /// Writes `body` under `key` if `cond` holds: `Ok(Some(etag))` when
    /// written (the ETag may be empty if the store sent none), `Ok(None)`
    /// when the precondition failed.
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        cond: Cond<'_>,
    ) -> Result<Option<String>, StateError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match cond {
            Cond::Absent => request.if_none_match("*"),
            Cond::Matches(etag) => request.if_match(etag),
            Cond::Any => request,
        };
        match request.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if precondition_failed(&e) => Ok(None),
            // `If-Match` on an object deleted meanwhile.
            Err(e) if matches!(cond, Cond::Matches(_)) && not_found(&e) => Ok(None),
            Err(e) => Err(self.error("write", key, &e)),
        }
    }

    /// Deletes `key` (only if its ETag is `if_match`, when given): `false`
    /// when the precondition failed or the object is gone.
    pub(crate) async fn delete(
        &self,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<bool, StateError> {
        let request = self.client.delete_object().bucket(&self.name).key(key);
        let request = match if_match {
            Some(etag) if !etag.is_empty() => request.if_match(etag),
            _ => request,
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if precondition_failed(&e) || not_found(&e) => Ok(false),
            Err(e) => Err(self.error("delete", key, &e)),
        }
    }

    /// Copies `from` to `to` if `from` still has ETag `if_match`: `false`
    /// when it changed or is gone.
    pub(crate) async fn copy(
        &self,
        from: &str,
        to: &str,
        if_match: &str,
    ) -> Result<bool, StateError> {
        let mut request = self
            .client
            .copy_object()
            .bucket(&self.name)
            .key(to)
            .copy_source(format!("{}/{}", self.name, encode_key(from)));
        if !if_match.is_empty() {
            request = request.copy_source_if_match(if_match);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if precondition_failed(&e) || not_found(&e) => Ok(false),
            Err(e) => Err(self.error("back up", from, &e)),
        }
    }

    /// Every key under `prefix`, in the store's (lexicographic) order.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        Ok(self
            .list_sized(prefix)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// Every key under `prefix` with its object's size, in the store's
    /// (lexicographic) order.
    pub(crate) async fn list_sized(&self, prefix: &str) -> Result<Vec<(String, u64)>, StateError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("list", prefix, &e))?;
            keys.extend(out.contents().iter().filter_map(|o| {
                let size = o.size().map_or(0, |s| u64::try_from(s).unwrap_or(0));
                o.key().map(|k| (k.to_string(), size))
            }));
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(keys),
            }
        }
    }

    /// Deletes `keys`, up to a thousand per request.
    pub(crate) async fn delete_all(&self, keys: &[String]) -> Result<(), StateError> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let Some(first) = chunk.first() else {
                continue;
            };
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StateError::Io {
                    operation: "delete",
                    location: self.url(first),
                    message: e.to_string(),
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StateError::Io {
                    operation: "delete",
                    location: self.url(first),
                    message: e.to_string(),
                })?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.name)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error("delete", first, &e))?;
            if let Some(failed) = out.errors().first() {
                return Err(StateError::Io {
                    operation: "delete",
                    location: self.url(failed.key().unwrap_or(first)),
                    message: failed.message().unwrap_or("unknown error").to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `key` percent-encoded for `x-amz-copy-source` (slashes kept).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_key;

    #[test]
    fn copy_source_keys_are_percent_encoded() {
        assert_eq!(encode_key("a/b.state.json"), "a/b.state.json");
        assert_eq!(encode_key("a b/ü+&"), "a%20b/%C3%BC%2B%26");
    }
}
