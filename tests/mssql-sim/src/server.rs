//! The TCP server: one task per connection, PRELOGIN and LOGIN7, then SQL batches, RPCs and
//! attentions until the client leaves.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::engine::cdc::CaptureConfig;
use crate::engine::{Engine, Outcome, Parameters, Session, Typed, error};
use crate::tds::login::{self, utf16};
use crate::tds::packet::{self, DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE, PacketType};
use crate::tds::prelogin;
use crate::tds::rpc::{self, Procedure, RpcRequest};
use crate::tds::token::{ServerMessage, TokenWriter, command, done_status};
use crate::tds::types::SqlValue;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Password of the `sa` login.
    pub sa_password: String,
    /// How the CDC capture job runs.
    pub capture: CaptureConfig,
}

impl SimulatorConfig {
    /// A configuration with `sa_password` and SQL Server's capture job defaults.
    pub fn new(sa_password: &str) -> SimulatorConfig {
        SimulatorConfig {
            sa_password: sa_password.to_owned(),
            capture: CaptureConfig::default(),
        }
    }
}

/// Faults a test can inject. None of these exist in SQL Server; they stand in for network
/// failures, restarts, overload and a stalled capture job.
#[derive(Debug, Default)]
struct Faults {
    capture_paused: AtomicBool,
    refuse_until: Mutex<Option<Instant>>,
    response_delay_ms: AtomicU64,
    connections: Mutex<Vec<AbortHandle>>,
}

/// A running simulator; stops accepting connections when dropped.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    engine: Arc<Engine>,
    accept_task: JoinHandle<()>,
    capture_task: JoinHandle<()>,
    faults: Arc<Faults>,
}

impl Simulator {
    /// Listens on `listen` (port 0 picks a free port) and serves until dropped.
    pub async fn start(listen: SocketAddr, config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let engine = Arc::new(Engine::default());
        let faults = Arc::new(Faults::default());
        let capture_task = tokio::spawn(capture_job(
            engine.clone(),
            config.capture.clone(),
            faults.clone(),
        ));
        let accept_task = tokio::spawn(accept(
            listener,
            engine.clone(),
            Arc::new(config),
            faults.clone(),
        ));
        Ok(Simulator {
            addr,
            engine,
            accept_task,
            capture_task,
            faults,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine behind it.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Fault injection (not SQL Server): stops the capture job; committed changes wait in the
    /// log and `sys.fn_cdc_get_max_lsn()` stays put until [`Simulator::resume_capture`].
    pub fn pause_capture(&self) {
        self.faults.capture_paused.store(true, Ordering::SeqCst);
    }

    /// Fault injection (not SQL Server): lets the capture job run again.
    pub fn resume_capture(&self) {
        self.faults.capture_paused.store(false, Ordering::SeqCst);
    }

    /// Fault injection (not SQL Server): cuts every open connection at once, as a network
    /// failure or a server restart would; their open transactions roll back.
    pub fn drop_connections(&self) {
        for connection in lock(&self.faults.connections).drain(..) {
            connection.abort();
        }
    }

    /// Fault injection (not SQL Server): closes every new connection at once for `duration`.
    pub fn refuse_connections_for(&self, duration: Duration) {
        *lock(&self.faults.refuse_until) = Some(Instant::now() + duration);
    }

    /// Fault injection (not SQL Server): waits `delay` before every response (zero to stop).
    pub fn delay_responses(&self, delay: Duration) {
        self.faults.response_delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

/// The capture job: reads committed transactions into change tables, like SQL Server's
/// `cdc.<db>_capture` job: a full scan is followed at once by the next; an idle one waits.
async fn capture_job(engine: Arc<Engine>, config: CaptureConfig, faults: Arc<Faults>) {
    loop {
        let read = if faults.capture_paused.load(Ordering::SeqCst) {
            0
        } else {
            engine.capture_scan(config.max_transactions_per_scan)
        };
        if read < config.max_transactions_per_scan {
            tokio::time::sleep(config.poll_interval).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.capture_task.abort();
        self.drop_connections();
    }
}

async fn accept(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: Arc<SimulatorConfig>,
    faults: Arc<Faults>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let refusing =
                    lock(&faults.refuse_until).is_some_and(|until| Instant::now() < until);
                if refusing {
                    drop(stream);
                    continue;
                }
                let (engine, config, connection_faults) =
                    (engine.clone(), config.clone(), faults.clone());
                let task = tokio::spawn(async move {
                    if let Err(e) = serve(stream, engine, &config, &connection_faults).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
                let mut connections = lock(&faults.connections);
                connections.retain(|c| !c.is_finished());
                connections.push(task.abort_handle());
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(
    mut stream: TcpStream,
    engine: Arc<Engine>,
    config: &SimulatorConfig,
    faults: &Faults,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let Some(message) = packet::read_message(&mut stream).await? else {
        return Ok(());
    };
    if message.packet_type != PacketType::PreLogin {
        return Ok(());
    }
    if prelogin::client_requires_encryption(&message.payload) {
        // SQL Server would negotiate TLS here; the simulator has none, so it refuses the way a
        // server without encryption does: by ending the connection.
        tracing::warn!("client requires encryption, which the simulator does not offer; closing");
        return Ok(());
    }
    packet::write_message(
        &mut stream,
        PacketType::TabularResult,
        &prelogin::response(),
        DEFAULT_PACKET_SIZE,
    )
    .await?;
    let Some(message) = packet::read_message(&mut stream).await? else {
        return Ok(());
    };
    let Some(login) = (message.packet_type == PacketType::Login7)
        .then(|| login::parse(&message.payload))
        .flatten()
    else {
        return Ok(());
    };
    let database = if login.database.is_empty() {
        "master".to_owned()
    } else {
        login.database.clone()
    };
    if let Some(failure) = login_failure(&login, &database, &engine, config) {
        let mut tokens = TokenWriter::default();
        failure.iter().for_each(|m| tokens.message(m));
        tokens.done(0xfd, done_status::ERROR, 0, 0);
        return packet::write_message(
            &mut stream,
            PacketType::TabularResult,
            &tokens.into_bytes(),
            DEFAULT_PACKET_SIZE,
        )
        .await;
    }
    let packet_size = match login.packet_size as usize {
        0 => DEFAULT_PACKET_SIZE,
        size => size.clamp(512, MAX_PACKET_SIZE),
    };
    let response = login_response(&database, packet_size);
    packet::write_message(
        &mut stream,
        PacketType::TabularResult,
        &response,
        DEFAULT_PACKET_SIZE,
    )
    .await?;
    let mut session = Session::new(engine, database);
    while let Some(message) = packet::read_message(&mut stream).await? {
        let run: fn(&mut Session, &[u8]) -> Vec<u8> = match message.packet_type {
            PacketType::SqlBatch => batch,
            PacketType::Rpc => remote_call,
            PacketType::Attention => |_, _| {
                let mut tokens = TokenWriter::default();
                tokens.done(0xfd, done_status::ATTENTION, 0, 0);
                tokens.into_bytes()
            },
            _ => return Ok(()),
        };
        // Statements run on a blocking thread, as SQL Server runs them on workers of its own:
        // a long query (a checksum over a million rows) never holds up the network tasks of
        // other connections, nor another client sharing this process's runtime.
        let payload = message.payload;
        let (returned, response) = tokio::task::spawn_blocking(move || {
            let response = run(&mut session, &payload);
            (session, response)
        })
        .await
        .map_err(std::io::Error::other)?;
        session = returned;
        let delay = faults.response_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        packet::write_message(
            &mut stream,
            PacketType::TabularResult,
            &response,
            packet_size,
        )
        .await?;
    }
    Ok(())
}

fn login_failure(
    login: &login::Login,
    database: &str,
    engine: &Engine,
    config: &SimulatorConfig,
) -> Option<Vec<ServerMessage>> {
    if !login.user.eq_ignore_ascii_case("sa") || login.password != config.sa_password {
        return Some(vec![error::login_failed(&login.user)]);
    }
    if !engine.database_exists(database) {
        return Some(vec![
            error::cannot_open_database(database),
            error::login_failed(&login.user),
        ]);
    }
    None
}

fn login_response(database: &str, packet_size: usize) -> Vec<u8> {
    let mut tokens = TokenWriter::default();
    tokens.env_change(1, database, "master");
    tokens.message(&ServerMessage {
        number: 5701,
        state: 2,
        class: 0,
        text: format!("Changed database context to '{database}'."),
    });
    tokens.collation_change();
    tokens.env_change(2, "us_english", "");
    tokens.message(&ServerMessage {
        number: 5703,
        state: 1,
        class: 0,
        text: "Changed language setting to us_english.".to_owned(),
    });
    tokens.login_ack();
    tokens.env_change(
        4,
        &packet_size.to_string(),
        &DEFAULT_PACKET_SIZE.to_string(),
    );
    tokens.done(0xfd, 0, 0, 0);
    tokens.into_bytes()
}

fn batch(session: &mut Session, payload: &[u8]) -> Vec<u8> {
    let headers_len = payload
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let Some(sql) = payload.get(headers_len..).and_then(utf16) else {
        return error_response(&error::syntax("(undecodable batch)"));
    };
    let outcomes = session.execute(&sql, &Parameters::new());
    let mut tokens = TokenWriter::default();
    let count = outcomes.len();
    for (index, outcome) in outcomes.iter().enumerate() {
        let more = if index + 1 < count {
            done_status::MORE
        } else {
            0
        };
        write_outcome(&mut tokens, outcome, 0xfd, more);
    }
    if count == 0 {
        tokens.done(0xfd, 0, 0, 0);
    }
    tokens.into_bytes()
}

fn remote_call(session: &mut Session, payload: &[u8]) -> Vec<u8> {
    let request = match rpc::decode(payload) {
        Ok(request) => request,
        Err(e) => return error_response(&error::not_implemented(&e.to_string())),
    };
    let outcomes = match sp_executesql(&request) {
        Ok((sql, parameters)) => session.execute_parameterized(&sql, &parameters),
        Err(e) => vec![Outcome::Error(e)],
    };
    let mut tokens = TokenWriter::default();
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Error(_)));
    for outcome in &outcomes {
        write_outcome(&mut tokens, outcome, 0xff, done_status::MORE);
    }
    tokens.return_status(0);
    tokens.done(
        0xfe,
        if failed { done_status::ERROR } else { 0 },
        command::EXECUTE,
        0,
    );
    tokens.into_bytes()
}

/// The statement and named parameters of an `sp_executesql` call.
fn sp_executesql(request: &RpcRequest) -> Result<(String, Parameters), ServerMessage> {
    let is_executesql = match &request.procedure {
        Procedure::Id(id) => *id == rpc::SP_EXECUTESQL,
        Procedure::Name(name) => {
            name.to_ascii_lowercase().trim_start_matches("sys.") == "sp_executesql"
        }
    };
    if !is_executesql {
        let name = match &request.procedure {
            Procedure::Id(id) => format!("procedure id {id}"),
            Procedure::Name(name) => name.clone(),
        };
        return Err(error::not_implemented(&format!("RPC to {name}")));
    }
    let text = |index: usize| match request.parameters.get(index).map(|p| &p.value) {
        Some(SqlValue::Text(text)) => Some(text.clone()),
        _ => None,
    };
    let sql = text(0).ok_or_else(|| error::not_implemented("sp_executesql without a statement"))?;
    let declared: Vec<String> = text(1)
        .unwrap_or_default()
        .split(',')
        .filter_map(|d| d.split_whitespace().next().map(str::to_lowercase))
        .collect();
    let mut parameters = Parameters::new();
    for (index, parameter) in request.parameters.iter().skip(2).enumerate() {
        let name = if parameter.name.is_empty() {
            declared.get(index).cloned().unwrap_or_default()
        } else {
            parameter.name.to_lowercase()
        };
        parameters.insert(
            name,
            Typed {
                sql_type: parameter.sql_type,
                value: parameter.value.clone(),
            },
        );
    }
    Ok((sql, parameters))
}

fn write_outcome(tokens: &mut TokenWriter, outcome: &Outcome, done_token: u8, more: u16) {
    match outcome {
        Outcome::Rows { columns, rows } => {
            tokens.column_metadata(columns);
            rows.iter().for_each(|row| tokens.row(columns, row));
            tokens.done(
                done_token,
                more | done_status::COUNT,
                command::SELECT,
                rows.len() as u64,
            );
        }
        Outcome::Done { command, rows } => {
            let counted = if rows.is_some() {
                done_status::COUNT
            } else {
                0
            };
            tokens.done(done_token, more | counted, *command, rows.unwrap_or(0));
        }
        Outcome::DatabaseChanged { new, old } => {
            tokens.env_change(1, new, old);
            tokens.message(&ServerMessage {
                number: 5701,
                state: 1,
                class: 0,
                text: format!("Changed database context to '{new}'."),
            });
            tokens.done(done_token, more, command::OTHER, 0);
        }
        Outcome::Error(message) => {
            tokens.message(message);
            tokens.done(done_token, more | done_status::ERROR, command::OTHER, 0);
        }
    }
}

fn error_response(message: &ServerMessage) -> Vec<u8> {
    let mut tokens = TokenWriter::default();
    tokens.message(message);
    tokens.done(0xfd, done_status::ERROR, 0, 0);
    tokens.into_bytes()
}
