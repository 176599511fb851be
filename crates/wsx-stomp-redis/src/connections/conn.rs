//! [`Conn`]: a task's connection for commands, to one Redis (`redis://`, the Sentinel
//! primary) or to a Redis Cluster (`redis-cluster://`), behind the client library's
//! [`ConnectionLike`], so that the tasks send the same commands and pipelines in every mode.
//!
//! A cluster connection keeps one connection per primary (the client library's
//! `ClusterConnection`, multiplexed: a node's connections do not grow with the number of
//! queues or topics), routes each command to the primary of its key's hash slot and follows
//! `MOVED` and `ASK` redirections. A pipeline, though, must hold commands of one slot only;
//! the tasks' pipelines span destinations, so [`Conn`] splits one into a pipeline per slot
//! ([`key_slot`] of each command's first key), runs those at once, and puts the replies
//! back in the order of the commands. A command of such a pipeline answered with a
//! redirection (the slot moved meanwhile: a failover, a resharding) is sent again alone,
//! in the pipeline's order, after the others: the client library then follows the
//! redirection (refreshing its slot map). Every pipeline the tasks send is safe to carry out
//! again (see the `writer` module), so a pipeline that fails as a whole is written again as
//! in single mode. Commands without a key (none in the tasks' pipelines in cluster mode) are
//! sent alone after the others.

use std::collections::BTreeMap;

use futures_util::FutureExt;
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Arg, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::cluster_url::key_slot;

/// A connection for commands: to one Redis, or to a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One Redis (`redis://…`, or the primary the sentinels name).
    Single(MultiplexedConnection),
    /// A Redis Cluster: a connection per primary, commands routed by slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => {
                if pipeline.is_transaction() {
                    // The tasks send no transactions; one would go as it is (one slot only).
                    c.req_packed_commands(pipeline, offset, count)
                } else {
                    split_by_slot(c.clone(), pipeline).boxed()
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// Run `pipeline` on a cluster as one pipeline per slot (see the module docs); the replies
/// in the order of its commands.
async fn split_by_slot(conn: ClusterConnection, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    let mut alone = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        match command_key(cmd) {
            Some(key) => by_slot.entry(key_slot(key)).or_default().push(i),
            None => alone.push(i),
        }
    }
    let runs = by_slot.into_values().map(|indexes| {
        let mut conn = conn.clone();
        let mut pipe = redis::pipe();
        for i in &indexes {
            pipe.add_command(cmds[*i].clone());
        }
        async move {
            let replies = conn.req_packed_commands(&pipe, 0, indexes.len()).await;
            (indexes, replies)
        }
    });
    let mut replies: Vec<Option<Value>> = vec![None; cmds.len()];
    for (indexes, result) in join_all(runs).await {
        let values = result?;
        if values.len() != indexes.len() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "pipeline",
                format!("{} replies to {} commands", values.len(), indexes.len()),
            )));
        }
        for (i, value) in indexes.into_iter().zip(values) {
            if !redirected(&value) {
                replies[i] = Some(value);
            }
        }
    }
    alone.extend(
        replies
            .iter()
            .enumerate()
            .filter(|(i, reply)| reply.is_none() && !alone.contains(i))
            .map(|(i, _)| i)
            .collect::<Vec<_>>(),
    );
    alone.sort_unstable();
    let mut conn = conn;
    for i in alone {
        replies[i] = Some(conn.req_packed_command(cmds[i]).await?);
    }
    Ok(replies
        .into_iter()
        .map(|reply| reply.unwrap_or(Value::Nil))
        .collect())
}

/// Whether a reply sends the command elsewhere (or asks to try again): it was not carried out.
fn redirected(value: &Value) -> bool {
    matches!(value, Value::ServerError(e)
        if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
}

/// The key a command is routed by, for the commands the tasks send (`None`: no key).
fn command_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .map(|arg| match arg {
            Arg::Simple(bytes) => bytes,
            _ => &[][..],
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"EVAL" | b"EVALSHA" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if keys == 0 {
                None
            } else {
                args.get(3).copied()
            }
        }
        b"XREADGROUP" | b"XREAD" => {
            let streams = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(streams + 1).copied()
        }
        b"PING" | b"WAIT" | b"CLIENT" | b"SCRIPT" | b"CLUSTER" | b"ROLE" | b"INFO" => None,
        _ => args.get(1).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_routed_by_their_first_key() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc")
            .arg(2)
            .arg("wsx:q:{a}")
            .arg("wsx:qm:{a}")
            .arg("x");
        assert_eq!(command_key(&eval), Some(&b"wsx:q:{a}"[..]));
        let mut none = redis::cmd("EVAL");
        none.arg("return 1").arg(0);
        assert_eq!(command_key(&none), None);
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg("g").arg("c").arg("COUNT").arg(1);
        read.arg("STREAMS").arg("wsx:q:{b}").arg(">");
        assert_eq!(command_key(&read), Some(&b"wsx:q:{b}"[..]));
        let mut xlen = redis::cmd("XLEN");
        xlen.arg("wsx:q:{c}");
        assert_eq!(command_key(&xlen), Some(&b"wsx:q:{c}"[..]));
        assert_eq!(command_key(&redis::cmd("PING")), None);
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(100);
        assert_eq!(command_key(&wait), None);
    }
}
