//! [`BrokerBuilder`]: how an application builds its [`Broker`] — options, WebSocket settings,
//! an asynchronous authenticator and application routes — and starts its engine.
//!
//! Where it sits in the flow: first. [`BrokerBuilder::build`] builds the sans-IO
//! [`wsx_stomp::Broker`] on the engine the options chose ([`crate::BrokerUrl`]: memory or
//! Redis) behind [`crate::app_engine::AppEngine`] (the `/app/` routes) and the metrics, puts it
//! in the hub with the deferred-authentication hook ([`crate::authenticator`]), and with Redis
//! starts the pump that feeds the engine what Redis sends. The broker is then mounted:
//! [`Broker::upgrade`] on a `wsx::Server`, `Broker::axum_route` (feature `axum`), or
//! [`Broker::serve_websocket`] on any upgraded WebSocket. [`Broker::start`] is the builder with
//! options and WebSocket settings only (what `wsx serve` uses).
//!
//! ```no_run
//! use wsx_broker::{AppMessage, Broker};
//! use wsx_stomp::{AuthRequest, Headers, Principal, Refusal};
//!
//! # async fn run() -> Result<(), wsx_broker::Error> {
//! let broker = Broker::builder()
//!     .authenticator(|request: AuthRequest| async move {
//!         match request.login.as_deref() {
//!             Some(login) => Ok(Principal::allow_all(login)),
//!             None => Err(Refusal::new("login required")),
//!         }
//!     })
//!     .route("/app/greet", |message: AppMessage| async move {
//!         let name = message.body_str().unwrap_or("stranger").to_owned();
//!         message.publish("/topic/greetings", Headers::new(), format!("Hello, {name}!"))?;
//!         Ok(())
//!     })
//!     .build()?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;
use wsx::WebSocketConfig;
use wsx_stomp::{AllowAll, Authenticator, Limits, SessionConfig};

use crate::app_engine::AppEngine;
use crate::app_routes::{AppHandler, AppRoutes, RoutePattern};
use crate::authenticator::{
    AUTHENTICATION_TIMEOUT, AsyncAuthenticator, BrokerAuth, random_token, spawn_authentication,
};
use crate::backend::{Backend, BrokerUrl, MemorySettings, RedisSettings};
use crate::broker::{Broker, MAX_PAUSE, MIN_QUEUED_BYTES, WRITE_HIGH_WATER, redis_pump};
use crate::error::Error;
use crate::escaped::Escaped;
use crate::hub::{Hub, LINK_QUEUE_LEN, Metered};
use crate::jwt::{DEFAULT_LEEWAY_SECS, JwtAuth, JwtOptions};
use crate::metrics::BrokerMetrics;
use crate::options::{BrokerOptions, HeartBeatMs};
use crate::outbound_queue::QueueLimits;

/// The in-memory engine of [`BrokerOptions::default`].
static MEMORY: BrokerUrl = BrokerUrl::Memory;

/// The defaults of `wsx serve`: in memory, no JWT (everyone allowed), heart-beats
/// 10000,10000, 64 subscriptions per session, idle limit 300 s.
impl Default for BrokerOptions<'static> {
    fn default() -> Self {
        BrokerOptions {
            jwt: JwtOptions {
                leeway_secs: DEFAULT_LEEWAY_SECS,
                ..JwtOptions::default()
            },
            idle_timeout: Some(Duration::from_secs(300)),
            max_subscriptions: 64,
            auto_ack_window: 256,
            max_unwritten_bytes: 1 << 20,
            heartbeat: HeartBeatMs {
                send: 10_000,
                receive: 10_000,
            },
            broker: &MEMORY,
            memory: MemorySettings::default(),
            redis: RedisSettings::default(),
        }
    }
}

/// The defaults of `wsx serve`'s `--redis-*` flags (prefix `wsx:`, random node id).
impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            node_id: None,
            prefix: "wsx:".to_owned(),
            claim_timeout: Duration::from_secs(30),
            max_pending_sends: 10_000,
            max_queue_len: 100_000,
            max_pending_bytes: 64 << 20,
            max_queue_bytes: 256 << 20,
            max_held_bytes: 64 << 20,
            queue_grace: Duration::from_secs(60),
            topic_history: wsx_stomp::TopicHistory::default(),
            replicas_ack: 0,
        }
    }
}

/// Builds a [`Broker`] ([`Broker::builder`]).
pub struct BrokerBuilder<'a> {
    options: BrokerOptions<'a>,
    ws_config: WebSocketConfig,
    authenticator: Option<Arc<dyn AsyncAuthenticator>>,
    authentication_timeout: Duration,
    routes: Vec<(String, Arc<dyn AppHandler>)>,
    reserved: Vec<String>,
}

impl std::fmt::Debug for BrokerBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("options", &self.options)
            .field("authenticator", &self.authenticator.is_some())
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A builder with the default options ([`BrokerOptions::default`]).
    pub fn builder() -> BrokerBuilder<'static> {
        BrokerBuilder {
            options: BrokerOptions::default(),
            ws_config: WebSocketConfig::default(),
            authenticator: None,
            authentication_timeout: AUTHENTICATION_TIMEOUT,
            routes: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// Build the broker and start its engine: `base` is the WebSocket configuration of the
    /// application's other routes (compression, keepalive); the message limit follows the STOMP
    /// frame limit. With a Redis engine this starts the node's Redis tasks and the pump (on the
    /// current tokio runtime; they connect in the background). Errors are for the user (a bad
    /// key file or URL). The same as [`Broker::builder`] with these options and settings.
    pub fn start(
        options: &BrokerOptions<'_>,
        base: &WebSocketConfig,
    ) -> Result<Arc<Broker>, Error> {
        Broker::builder()
            .options(options.clone())
            .ws_config(base.clone())
            .build()
    }
}

impl<'a> BrokerBuilder<'a> {
    /// Authentication (JWT), session limits, heart-beats, the engine and its budgets.
    pub fn options<'b>(self, options: BrokerOptions<'b>) -> BrokerBuilder<'b> {
        BrokerBuilder {
            options,
            ws_config: self.ws_config,
            authenticator: self.authenticator,
            authentication_timeout: self.authentication_timeout,
            routes: self.routes,
            reserved: self.reserved,
        }
    }

    /// Set how much history each topic keeps, on either engine (default 1000 messages and
    /// 1 MiB per topic; `max_messages: 0` keeps none): what a SUBSCRIBE with
    /// `x-stream-offset` can resume from.
    pub fn topic_history(mut self, history: wsx_stomp::TopicHistory) -> Self {
        self.options.memory.topic_history = history;
        self.options.redis.topic_history = history;
        self
    }

    /// The WebSocket settings of the application's other routes (compression, keepalive);
    /// the broker sets the message limits and the output budget of its own connections.
    pub fn ws_config(mut self, base: WebSocketConfig) -> Self {
        self.ws_config = base;
        self
    }

    /// Decide who connects with `authenticator` (asynchronous, see [`AsyncAuthenticator`])
    /// instead of the built-in JWT check of the options.
    pub fn authenticator(mut self, authenticator: impl AsyncAuthenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// How long the authenticator may take before the client is refused with
    /// `authentication timed out` (default [`AUTHENTICATION_TIMEOUT`], 10 s).
    pub fn authentication_timeout(mut self, timeout: Duration) -> Self {
        self.authentication_timeout = timeout;
        self
    }

    /// Hand the SENDs to destinations matching `pattern` (`/app/chat.{room}`) to `handler`
    /// (see [`Broker::route`]); an invalid pattern fails [`BrokerBuilder::build`].
    pub fn route(mut self, pattern: &str, handler: impl AppHandler) -> Self {
        self.routes.push((pattern.to_owned(), Arc::new(handler)));
        self
    }

    /// Reserve the destinations that start with `prefix` (`/topic/wsx.`) for the server's own
    /// traffic: a client's SEND there is refused with an ERROR (and its session closed, as for
    /// any refused SEND), while [`Broker::publish`] and handlers may publish there and clients
    /// may still subscribe. Repeatable.
    pub fn reserve(mut self, prefix: &str) -> Self {
        self.reserved.push(prefix.to_owned());
        self
    }

    /// Build the broker and start its engine (see [`Broker::start`]); must run on a tokio
    /// runtime.
    pub fn build(self) -> Result<Arc<Broker>, Error> {
        let BrokerBuilder {
            options,
            ws_config: base,
            authenticator,
            authentication_timeout,
            routes: route_list,
            reserved,
        } = self;
        let routes = Arc::new(AppRoutes::default());
        for (pattern, handler) in route_list {
            routes.add(RoutePattern::parse(&pattern)?, handler);
        }
        let limits = Limits::default();
        let config = SessionConfig::default()
            .limits(limits)
            .heart_beat(options.heartbeat.send, options.heartbeat.receive)
            .max_subscriptions(options.max_subscriptions)
            .auto_ack_window(options.auto_ack_window)
            .max_unwritten_bytes(options.max_unwritten_bytes)
            .idle_timeout(options.idle_timeout);
        let jwt = JwtAuth::from_options(&options.jwt)
            .map_err(Error::Config)?
            .map(Arc::new);
        let built_in: Arc<dyn Authenticator> = match &jwt {
            Some(jwt) => jwt.clone(),
            None => Arc::new(AllowAll),
        };
        let auth = BrokerAuth {
            built_in,
            deferred: authenticator.is_some(),
            in_process_token: random_token(),
        };
        let in_process_info = auth.in_process_info();
        let (engine, redis_events) =
            Backend::start(options.broker, &options.memory, &options.redis)
                .map_err(Error::Config)?;
        match &engine {
            Backend::Memory(_) => info!("stomp: in-memory broker"),
            Backend::Redis(redis) => info!(
                "stomp: broker shared through {} (node id {}, key prefix {:?})",
                Escaped(options.broker),
                Escaped(redis.node_id()),
                options.redis.prefix
            ),
        }
        let metrics = Arc::new(BrokerMetrics::default());
        if let Some(redis) = engine.redis_metrics() {
            metrics.set_redis(redis);
        }
        let queue_limits = QueueLimits {
            items: LINK_QUEUE_LEN,
            bytes: limits
                .max_frame_size
                .saturating_mul(4)
                .max(MIN_QUEUED_BYTES),
        };
        // A WebSocket message may pack a few frames; the decoder enforces the frame limits.
        let message_limit = limits.max_frame_size.saturating_mul(2);
        // The task keeps at most WRITE_HIGH_WATER plus one frame in the WebSocket's buffer; the
        // WebSocket's own output budget must sit above that, so that the session alone decides
        // when a client's input pauses (and suspends its heart-beat check meanwhile).
        let write_budget = base.max_write_buffer.max(
            WRITE_HIGH_WATER
                .saturating_add(message_limit)
                .saturating_add(64 * 1024),
        );
        let ws_config = base
            .clone()
            .max_message_size(message_limit)
            .max_frame_size(message_limit)
            .backpressure(write_budget, base.backpressure);
        let reserved_prefixes: Arc<[String]> = reserved.clone().into();
        let broker = Arc::new_cyclic(|weak| {
            let engine = Metered::new(
                AppEngine::new(engine, routes.clone(), weak.clone()).reserve(reserved),
                metrics.clone(),
            );
            let mut hub = Hub::new(
                wsx_stomp::Broker::new(engine, config, Arc::new(auth)),
                metrics.clone(),
                queue_limits,
            );
            if let Some(authenticator) = authenticator {
                let weak = weak.clone();
                hub = hub.with_authentication(Box::new(move |conn, request| {
                    spawn_authentication(
                        authenticator.clone(),
                        authentication_timeout,
                        weak.clone(),
                        conn,
                        request,
                    );
                }));
            }
            Broker {
                hub,
                ws_config,
                max_pause: options.idle_timeout.unwrap_or(MAX_PAUSE),
                metrics,
                closing: watch::channel(false).0,
                pump: Mutex::new(None),
                routes,
                in_process_info,
                jwt,
                max_body_size: limits.max_body_size,
                reserved: reserved_prefixes,
                publish_bodies: Arc::new(tokio::sync::Semaphore::new(
                    crate::PUBLISH_BODIES_BUDGET.max(limits.max_body_size),
                )),
            }
        });
        if let Some(events) = redis_events {
            let (stop, stopped) = watch::channel(false);
            let pump = tokio::spawn(redis_pump(broker.clone(), events, stopped));
            *broker.pump.lock().unwrap_or_else(PoisonError::into_inner) = Some((stop, pump));
        }
        Ok(broker)
    }
}
