/// @file threads.hpp
/// The thread rules of msgtrans, stated once; the other headers point here.
///
/// **Loops.** A server runs on its own runtime, a pool of loop threads
/// (server_builder::threads). A client runs on a one-loop runtime of its own, or on one
/// shared with other clients (client_builder::use_runtime). Each connection lives on one
/// loop for its whole life.
///
/// **Handlers** (on_connected, on_message, on_request, on_closed, on_sent, on_error) run on
/// the loop of the connection they concern, so the handlers of one connection never run at
/// the same time. A handler must not block: while it runs, its loop serves no other
/// connection. server_builder::on_notice runs on any thread and must not block either.
///
/// **Any thread.** Every method of server, client, responder and event_stream may be
/// called from any thread, handlers included, except the blocking calls below. On a loop
/// thread of the runtime they would wait for, they do not block (they could wait for
/// themselves); they return errc::wrong_thread, whose message says what to do instead:
/// - client::connect() and client::call(): use async_connect() / request() there.
/// - server::stop(): call it from another thread (server::close ends one session
///   from a handler).
/// - send() in backpressure_mode::wait, when it would have to wait for room (a send
///   that fits is queued as usual).
///
/// Two more calls behave differently on such a loop thread, without an error:
/// - client::disconnect() starts the close and returns without waiting for it.
/// - event_stream::wait_for() must not be called there (it cannot tell): use next().
///
/// Destroying a server or client inside one of its own handlers is not supported.
///
/// **Transports** (transport.hpp): a connection is called only on its own loop, and calls
/// its connection_owner only on that loop.
#pragma once
