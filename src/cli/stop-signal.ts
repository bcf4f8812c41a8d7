// Long-running commands (serve, dashboard) run until Ctrl-C or SIGTERM, then close cleanly with exit code 0.

/**
 * Resolves on the first SIGINT or SIGTERM. Call it before printing the address: whoever reads the address may stop
 * the server at once.
 */
export function stopSignal(): Promise<void> {
  return new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
