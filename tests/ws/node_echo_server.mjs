// A Node `ws` echo server, the reference point of the load measurement (bench.sh).
// Prints "listening ws 127.0.0.1:PORT/" and echoes every message as it came.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16 << 20 });
wss.on('listening', () => console.log(`listening ws 127.0.0.1:${wss.address().port}/`));
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
process.on('SIGTERM', () => process.exit(0));
