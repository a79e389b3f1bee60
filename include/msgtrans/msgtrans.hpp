/// @file msgtrans.hpp
/// Everything: server, client, events, packets and the built-in transports.
#pragma once

#include <msgtrans/client.hpp>
#include <msgtrans/auth.hpp>
#include <msgtrans/cluster.hpp>
#include <msgtrans/error.hpp>
#include <msgtrans/events.hpp>
#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/options.hpp>
#include <msgtrans/packet.hpp>
#include <msgtrans/quic.hpp>
#include <msgtrans/runtime.hpp>
#include <msgtrans/server.hpp>
#include <msgtrans/session.hpp>
#include <msgtrans/stats.hpp>
#include <msgtrans/tcp.hpp>
#include <msgtrans/threads.hpp>
#include <msgtrans/transport.hpp>
#include <msgtrans/url.hpp>
#include <msgtrans/ws.hpp>
