/* core/dev/cmd_sink_smtp.h: the SMTP server side of `sluice sink` for one connection: its own
 * line reader, DATA/BDAT decoder, STARTTLS and AUTH PLAIN/LOGIN. It shares no code with
 * the relay's parser, so tests have an independent witness. Blocking I/O on one thread. */
#ifndef SLUICE_CMD_SINK_SMTP_H
#define SLUICE_CMD_SINK_SMTP_H

#include <stdint.h>

#include "dev/cmd_sink_output.h"

/* Runs one session on the connected blocking socket fd until QUIT, EOF, an I/O error, the
 * idle timeout, a --drop-data match or shutdown(2) of fd by another thread. Logs
 * sink.open and sink.close. fd stays open and owned by the caller; cfg is borrowed. */
void cmd_sink_smtp_run(const struct sink_config *cfg, int fd, uint64_t session,
                       const char *peer);

#endif
