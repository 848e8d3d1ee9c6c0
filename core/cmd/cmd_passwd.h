/* core/cmd/cmd_passwd.h: what cmd_passwd.c shares with cmd_passwd_import.c. */
#ifndef SLUICE_CMD_PASSWD_H
#define SLUICE_CMD_PASSWD_H

/* `sluice passwd --import`: files of `email:password` lines into out_dir/DOMAIN.txt
 * hashed with prefix ("$y$", ...). Returns the exit code. */
int cmd_passwd_import(const char *prefix, const char *out_dir, const char *default_domain,
                      char **files, int n_files);

#endif
