/* core/config/config_access.h: which files of a configuration its service user could not
 * read by itself.
 *
 * Started as root, sluice reads every file through its privileged reader (privfile.h),
 * at start and on every reload, so a root-only key or secret works. It keeps working only
 * while the reader may open it: a reload that moves such a file to a directory start-up
 * never read from fails (`reload.fail`), and without the reader (started unprivileged)
 * the service user reads everything itself. `sluice check` and `sluice run` therefore say
 * which files the service user cannot read (issue 13: an administrator learnt it from a
 * failed HUP). The answer is exact: a child process becomes the user (its groups too) and
 * opens each file, so modes, owners, ACLs and directory search rights all count. */
#ifndef SLUICE_CONFIG_ACCESS_H
#define SLUICE_CONFIG_ACCESS_H

#include <stddef.h>

#include "config/config.h"

/* Called for a file the user cannot open: key is where the configuration names it
 * ("users_dir" for a users file), reason strerror()'s text. */
typedef void config_access_fn(void *arg, const char *key, const char *path,
                              const char *reason);

/* Open, as user cfg->user, every file in cfg->files and every users file in
 * cfg->users_dir, and call fn for each one that fails. Only as root (anyone else reads as
 * itself: returns 0 and calls nothing). Forks one short-lived child; call it before any
 * thread exists. 0, or -1 with err ("no user 'x'", a failed fork). */
int config_access_check(const struct config *cfg, config_access_fn *fn, void *arg, char *err,
                        size_t errlen);

/* config_access_check() with a notice log line `config.unreadable` (key, path, user,
 * error) for each file, and one for a check that could not run: what `sluice run` and
 * `sluice check` say. */
void config_access_warn(const struct config *cfg);

#endif
