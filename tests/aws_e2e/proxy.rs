//! A tiny counting HTTP proxy: a loopback listener that forwards every
//! request to the moto server and records which API action it was, so a
//! test can assert how many calls, and which kinds, a command made.
//!
//! It can also answer a chosen action with an error of AWS's own shape a
//! given number of times before letting it through ([`Fault`]): that is how
//! the tests meet what moto never does — throttling, and IAM's eventual
//! consistency ("The role defined for the function cannot be assumed by
//! Lambda") — and check that the SDK and cairn react as they should.
//!
//! The action of a request is named from what the AWS protocols carry:
//! `X-Amz-Target` (JSON protocols: ECS, ECR), `Action=` in a form body
//! (query protocols: IAM, CloudFormation), or else the method and path
//! (REST protocols: Lambda, S3). Each request is forwarded on its own
//! connection and answered with `Connection: close`, so no keep-alive state
//! has to be tracked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request that went through the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// `ecs:DescribeClusters`, `iam:GetRole`, `GET /2015-03-31/functions/x`…
    pub action: String,
}

impl Call {
    /// Whether the call can change anything: a mutating action name, or a
    /// REST call that is not GET/HEAD.
    pub fn is_mutating(&self) -> bool {
        const VERBS: &[&str] = &[
            "Create",
            "Put",
            "Delete",
            "Register",
            "Deregister",
            "Tag",
            "Untag",
            "Update",
            "Attach",
            "Detach",
            "Run",
            "Start",
            "Stop",
            "Set",
            "Add",
            "Remove",
            "Publish",
        ];
        if self.is_rest() {
            return !matches!(self.method.as_str(), "GET" | "HEAD");
        }
        let name = self.action.split_once(':').map_or("", |(_, n)| n);
        VERBS.iter().any(|v| name.starts_with(v))
    }

    fn is_rest(&self) -> bool {
        self.action.starts_with(&format!("{} ", self.method))
    }
}

/// An error answer for `times` calls of `action` (as [`Call::action`]
/// names it), instead of forwarding them.
#[derive(Debug, Clone)]
pub struct Fault {
    pub action: String,
    pub times: usize,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Fault {
    /// Lambda's answer while a just-created role has not propagated.
    pub fn role_not_assumable(times: usize) -> Fault {
        Fault {
            action: "POST /2015-03-31/functions".into(),
            times,
            status: 400,
            headers: vec![
                ("x-amzn-errortype".into(), "InvalidParameterValueException".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: r#"{"Type":"User","message":"The role defined for the function cannot be assumed by Lambda."}"#.into(),
        }
    }

    /// IAM's throttling answer (query protocol, XML) for `action`.
    pub fn iam_throttling(action: &str, times: usize) -> Fault {
        Fault {
            action: format!("iam:{action}"),
            times,
            status: 400,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                   <Message>Rate exceeded</Message></Error>\
                   <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
                .into(),
        }
    }
}

/// The proxy; it runs until the test process ends.
pub struct CountingProxy {
    port: u16,
    calls: Arc<Mutex<Vec<Call>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl CountingProxy {
    /// Starts forwarding `127.0.0.1:<new port>` to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> CountingProxy {
        Self::with_faults(upstream, Vec::new())
    }

    /// A proxy that answers the given faults before forwarding.
    pub fn with_faults(upstream: u16, faults: Vec<Fault>) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(faults));
        let sink = Arc::clone(&calls);
        let pending = Arc::clone(&faults);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let sink = Arc::clone(&sink);
                let pending = Arc::clone(&pending);
                std::thread::spawn(move || {
                    if let Err(e) = serve(client, upstream, &sink, &pending) {
                        eprintln!("proxy: {e}");
                    }
                });
            }
        });
        CountingProxy {
            port,
            calls,
            faults,
        }
    }

    /// How many answers of each fault are still to be given.
    pub fn faults_left(&self) -> Vec<usize> {
        self.faults
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.times)
            .collect()
    }

    /// The endpoint to give the SDK instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The calls so far (and forgets them).
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// Reads one request from `client`, forwards it, copies the answer back.
fn serve(
    client: TcpStream,
    upstream: u16,
    sink: &Mutex<Vec<Call>>,
    faults: &Mutex<Vec<Fault>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut target = None;
    let mut request_line = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed an idle connection
        }
        if request_line.is_empty() {
            request_line = line.trim_end().to_string();
            head.push(line);
            continue;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        } else if lower.starts_with("x-amz-target:") {
            target = line.split_once(':').map(|(_, v)| v.trim().to_string());
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)?
    } else {
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        body
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let action = action_name(&method, &path, target.as_deref(), &body);
    sink.lock().unwrap().push(Call {
        action: action.clone(),
        method,
    });
    let fault = faults
        .lock()
        .unwrap()
        .iter_mut()
        .find(|f| f.action == action && f.times > 0)
        .map(|f| {
            f.times -= 1;
            f.clone()
        });
    if let Some(f) = fault {
        let mut answer = format!("HTTP/1.1 {} Error\r\n", f.status);
        for (k, v) in &f.headers {
            answer.push_str(&format!("{k}: {v}\r\n"));
        }
        answer.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            f.body.len(),
            f.body
        ));
        let mut client = reader.into_inner();
        client.write_all(answer.as_bytes())?;
        client.flush()?;
        return client.shutdown(std::net::Shutdown::Both);
    }

    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = head.concat().into_bytes();
    if chunked {
        // Forward the decoded body with a length instead.
        let text = String::from_utf8_lossy(&request).into_owned();
        let kept: Vec<&str> = text
            .split_inclusive("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("transfer-encoding:"))
            .collect();
        request = kept.concat().into_bytes();
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request.extend_from_slice(&body);
    up.write_all(&request)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;

    // Make the client drop this connection after the answer.
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 2);
    let (resp_head, rest) = response.split_at(split);
    let text = String::from_utf8_lossy(resp_head);
    let mut out: Vec<u8> = text
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<String>()
        .into_bytes();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(rest);
    let mut client = reader.into_inner();
    client.write_all(&out)?;
    client.flush()?;
    client.shutdown(std::net::Shutdown::Both)
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size_hex, 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// `service:Action` for JSON and query protocols, `METHOD path?query`
/// for REST.
fn action_name(method: &str, path: &str, target: Option<&str>, body: &[u8]) -> String {
    if let Some(t) = target {
        // e.g. AmazonEC2ContainerServiceV20141113.DescribeClusters
        let (service, action) = t.split_once('.').unwrap_or(("", t));
        let service = if service.contains("ContainerRegistry") {
            "ecr"
        } else if service.contains("ContainerService") {
            "ecs"
        } else {
            service
        };
        return format!("{service}:{action}");
    }
    let text = String::from_utf8_lossy(body);
    if let Some(action) = text
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .filter(|_| method == "POST")
    {
        // IAM and CloudFormation both speak the query protocol; tell them
        // apart by the action's vocabulary.
        let service = if text.contains("Version=2016-11-15") {
            "ec2"
        } else if action.contains("Stack") || action.contains("Template") {
            "cloudformation"
        } else {
            "iam"
        };
        return format!("{service}:{action}");
    }
    format!("{method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_mutation() {
        let c = |m: &str, p: &str, t: Option<&str>, b: &str| Call {
            method: m.into(),
            action: action_name(m, p, t, b.as_bytes()),
        };
        let describe = c(
            "POST",
            "/",
            Some("AmazonEC2ContainerServiceV20141113.DescribeClusters"),
            "{}",
        );
        assert_eq!(describe.action, "ecs:DescribeClusters");
        assert!(!describe.is_mutating());
        let tag = c(
            "POST",
            "/",
            Some("AmazonEC2ContainerRegistry_V20150921.TagResource"),
            "{}",
        );
        assert_eq!(tag.action, "ecr:TagResource");
        assert!(tag.is_mutating());
        let get_role = c("POST", "/", None, "Action=GetRole&RoleName=x");
        assert_eq!(get_role.action, "iam:GetRole");
        assert!(!get_role.is_mutating());
        assert!(c("POST", "/", None, "Action=DeleteRole&RoleName=x").is_mutating());
        let lambda_get = c("GET", "/2015-03-31/functions/f", None, "");
        assert_eq!(lambda_get.action, "GET /2015-03-31/functions/f");
        assert!(!lambda_get.is_mutating());
        assert!(c("PUT", "/bucket?tagging", None, "<x/>").is_mutating());
    }
}
