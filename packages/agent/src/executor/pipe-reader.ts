/**
 * Reading a sandbox's pipes into one buffer the agent reuses.
 *
 * A `net.Socket` reads into a new 64 KiB buffer per read, allocated with malloc and freed only
 * when V8 next collects. A task printing at full speed makes sixteen of them per MiB; freed
 * between longer-lived small allocations, they fragment glibc's main heap, which gives back
 * only its top. A worked agent idled with 12 MiB of free chunks in a 16 MiB heap (gdb,
 * malloc_info; bench/README.md, "where a worked agent's memory goes"). With Node's `onread`
 * option the socket reads into a buffer of ours instead, and nothing is allocated per read.
 *
 * The price is a contract: a 'data' chunk of such a stream is BORROWED. It is a view of the
 * shared buffer, valid while its handler runs; the next read of any pipe overwrites it. A
 * consumer copies what it keeps past its handler (the task runner's turn of masked output:
 * output/turn-copies.ts); the spool writes a chunk synchronously and keeps nothing. One
 * buffer serves every pipe: reads run one at a time on the event loop, each handler before
 * the next read.
 *
 * A socket made with `onread` starts reading at once and hands what it reads to no one but
 * the callback, so it waits paused until the first 'data' listener comes: what a sandbox
 * writes before the task runner listens stays in the pipe (as the stream's own buffer kept it
 * before).
 */
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';

/** A pipe holds 64 KiB by default, so a read returns at most that much. */
const READ_BYTES = 64 * 1024;

/** Allocated once, when the agent loads: low in the C heap, where it splits nothing later. */
const shared = Buffer.allocUnsafeSlow(READ_BYTES);

/** A readable socket on `fd` whose 'data' chunks are borrowed views of the shared read buffer. */
export function borrowingReader(fd: number): Socket {
  // Node takes `onread` in the constructor too (lib/net.js); @types/node lists it for connect() only.
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: shared,
      callback: (n: number, buf: Uint8Array) => {
        socket.emit('data', Buffer.from(buf.buffer, buf.byteOffset, n));
        return true;
      },
    },
  };
  const socket = new Socket(options);
  socket.pause();
  const startOnListener = (event: string | symbol): void => {
    if (event !== 'data') return;
    socket.off('newListener', startOnListener);
    socket.resume();
  };
  socket.on('newListener', startOnListener);
  return socket;
}
