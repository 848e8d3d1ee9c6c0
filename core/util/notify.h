/* core/util/notify.h: tells the service manager what the daemon is doing, by systemd's
 * notification protocol (sd_notify(3)) without libsystemd: one datagram of
 * newline-separated VAR=value assignments to the AF_UNIX socket named by $NOTIFY_SOCKET
 * (a path, or an abstract name written with a leading '@'). With the variable unset
 * (not started by systemd, or Type= is not notify) every call does nothing. When to say
 * what is the caller's business (cmd_run.c: READY, STOPPING; daemon_ctl.c: RELOADING). */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

#include <stddef.h>

/* Send state (e.g. "READY=1\nSTATUS=serving") as one datagram. 0 when sent or when
 * $NOTIFY_SOCKET is unset or empty; -1 and the reason in err when the variable is not an
 * absolute path or '@' name, or the send failed. Any thread; never blocks. */
int notify_send(const char *state, char *err, size_t errlen);

/* "READY=1" with a STATUS= text (may be NULL): start-up is over, or a reload ended
 * (either way: a failed reload keeps the old generation, which serves). */
int notify_ready(const char *status, char *err, size_t errlen);

/* "RELOADING=1" and MONOTONIC_USEC=<CLOCK_MONOTONIC now, in microseconds>, as systemd
 * asks of a reload's start (systemd.service(5), Type=notify-reload). */
int notify_reloading(char *err, size_t errlen);

/* "STOPPING=1": the drain begins. */
int notify_stopping(char *err, size_t errlen);

#endif
