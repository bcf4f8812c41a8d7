// The byte pipe between host and device: the client talks to this interface; serialport is one adapter of it.

/** A bidirectional byte stream to one device (a serial port, a PTY, a socket, a test relay). */
export interface Transport {
  /** What it is connected to, for messages (e.g. the port path). */
  readonly name: string;
  /** Queues bytes for the device; resolves when the adapter has taken them. */
  write(bytes: Uint8Array): Promise<void>;
  /** Subscribes to received bytes; returns the unsubscribe function. */
  onData(listener: (bytes: Uint8Array) => void): () => void;
  /** Closes the connection; idempotent. */
  close(): Promise<void>;
}
