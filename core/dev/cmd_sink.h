/* core/dev/cmd_sink.h: `sluice sink`, a capturing upstream SMTP server. It receives what the
 * relay (or any client) sends and writes each accepted message to a Maildir byte for byte,
 * so integration tests and benchmarks have an independent witness on the upstream side.
 * It shares no code with the relay. cmd_sink.c is the process (options, listeners,
 * threads, signals), cmd_sink_output.c the output side (--log, the Maildir),
 * cmd_sink_smtp.c the protocol of one connection. Options: `sluice sink --help`. */
#ifndef SLUICE_CMD_SINK_H
#define SLUICE_CMD_SINK_H

/* Runs the sink in the foreground until SIGTERM or SIGINT. argv[0] is "sink"; options
 * are parsed with getopt_long (optind is reset). Prints "sink listening on ADDR:PORT" on
 * stderr per listener once every listener is bound and the pid file written.
 * Returns 0 after a signal, 1 when it could not start, 2 on a usage error. Leaves
 * SIGTERM/SIGINT blocked in the calling thread (so that a second one while the caller
 * exits does not kill it) and ignores SIGPIPE for the whole process. */
int cmd_sink_main(int argc, char **argv);

#endif
