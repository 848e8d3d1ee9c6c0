/* tests/unit/test_privfile.c: the privileged reader (core/util/privfile.c, privfile_server.c)
 * with real privileges: each case forks a child that starts the reader as root, opens
 * what "start-up" opens, becomes nobody, seals, and checks what a reload may and may not
 * open. Needs root, as `sluice run` does to need the reader at all (CI runs as root). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "util/privfile.h"
#include "testio.h"
#include "tmpdir.h"

#define NOBODY 65534

static char dir[256];

/* secret/ and other/ and users/ and log/: root's, 0700, files 0600. */
static void
make_tree(void)
{
    snprintf(dir, sizeof(dir), "%s", test_tmpdir("privfile"));
    chmod(dir, 0755);
    mkdir(test_path(dir, "secret"), 0700);
    mkdir(test_path(dir, "other"), 0700);
    mkdir(test_path(dir, "users"), 0700);
    mkdir(test_path(dir, "log"), 0700);
    test_write_file_mode(dir, "secret/a.txt", "alpha", 0600);
    test_write_file_mode(dir, "secret/b.txt", "beta", 0600);
    test_write_file_mode(dir, "other/c.txt", "gamma", 0600);
    test_write_file_mode(dir, "users/example.org.txt", "x", 0600);
    test_write_file_mode(dir, "users/example.net.txt", "y", 0600);
    if (mkfifo(test_path(dir, "secret/fifo"), 0600) != 0 ||
        symlink(test_path(dir, "other/c.txt"), test_path(dir, "secret/link-out")) != 0) {
        perror("test_privfile: the tree");
        abort();
    }
}

/* What start-up does as root: read secret/a.txt, list users/, append to log/audit.log. */
static void
start_up_as_root(void)
{
    char   err[512];
    size_t len;
    char  *text;
    DIR   *d;
    int    fd;

    CHECK(privfile_start(err, sizeof(err)) == 0);
    text = privfile_read(test_path(dir, "secret/a.txt"), 1024, &len, err, sizeof(err));
    CHECK(text != NULL && strcmp(text, "alpha") == 0);
    free(text);
    d = privfile_opendir(test_path(dir, "users"));
    CHECK(d != NULL);
    if (d != NULL)
        closedir(d);
    fd = privfile_open(test_path(dir, "log/audit.log"), PRIVFILE_APPEND);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
}

static void
become_nobody_and_seal(void)
{
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
        perror("setuid");
        _exit(2);
    }
    privfile_seal();
}

/* Run body in a child that went through start-up and the seal; its CHECKs count there,
 * and its exit status (the failures) here. */
static void
in_sealed_child(void (*before_drop)(void), void (*body)(void))
{
    pid_t pid = fork();
    int   status = -1;

    if (pid == 0) {
        alarm(10); /* a reader that blocks fails the case instead of hanging it */
        start_up_as_root();
        if (before_drop != NULL)
            before_drop();
        become_nobody_and_seal();
        body();
        privfile_stop();
        _exit(check_failures > 0 ? 1 : 0);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static char *
read_as_reload(const char *name, int *err_no)
{
    char   err[512];
    size_t len;
    char  *text = privfile_read(test_path(dir, name), 1024, &len, err, sizeof(err));

    *err_no = text == NULL ? errno : 0;
    return text;
}

static void
body_next_file(void)
{
    int   e;
    char *text;

    CHECK(open(test_path(dir, "secret/b.txt"), O_RDONLY) < 0 && errno == EACCES); /* nobody alone */
    text = read_as_reload("secret/b.txt", &e);
    CHECK(text != NULL && strcmp(text, "beta") == 0);
    free(text);
}

static void
a_reload_reads_a_root_only_file_beside_one_start_up_read(void)
{
    in_sealed_child(NULL, body_next_file);
}

static void
body_other_dir(void)
{
    int   e;
    char *text = read_as_reload("other/c.txt", &e);

    CHECK(text == NULL);
    CHECK_EQ_INT(e, EACCES);
    free(text);
}

static void
a_file_where_start_up_never_read_is_refused(void)
{
    in_sealed_child(NULL, body_other_dir);
}

static void
body_link_out(void)
{
    int   e;
    char *text = read_as_reload("secret/link-out", &e);

    CHECK(text == NULL);
    CHECK_EQ_INT(e, EACCES);
    free(text);
}

static void
a_symlink_out_of_a_known_directory_is_refused(void)
{
    in_sealed_child(NULL, body_link_out);
}

static void
body_fifo(void)
{
    int   e;
    char *text = read_as_reload("secret/fifo", &e);

    CHECK(text == NULL);
    CHECK_EQ_INT(e, EINVAL);
    free(text);
}

static void
a_fifo_is_refused_without_blocking_the_reader(void)
{
    in_sealed_child(NULL, body_fifo);
}

static void
body_list_again(void)
{
    DIR           *d = privfile_opendir(test_path(dir, "users"));
    struct dirent *de;
    int            names = 0, e;
    char          *text;

    CHECK(d != NULL);
    while (d != NULL && (de = readdir(d)) != NULL)
        names += strstr(de->d_name, ".txt") != NULL;
    if (d != NULL)
        closedir(d);
    CHECK_EQ_INT(names, 2);
    text = read_as_reload("users/example.net.txt", &e); /* listed, never read */
    CHECK(text != NULL && strcmp(text, "y") == 0);
    free(text);
}

static void
a_listed_directory_is_listed_again_and_its_files_read(void)
{
    in_sealed_child(NULL, body_list_again);
}

static void
rotate_audit_log(void)
{
    CHECK(rename(test_path(dir, "log/audit.log"), test_path(dir, "log/audit.log.1")) == 0);
}

static void
body_audit_reopen(void)
{
    int         fd = privfile_open(test_path(dir, "log/audit.log"), PRIVFILE_APPEND);
    struct stat st;

    CHECK(fd >= 0);
    CHECK(fd >= 0 && write(fd, "line\n", 5) == 5);
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 5 && S_ISREG(st.st_mode));
    if (fd >= 0)
        close(fd);
    fd = privfile_open(test_path(dir, "log/other.log"), PRIVFILE_APPEND);
    CHECK(fd < 0 && errno == EACCES);
}

static void
the_audit_log_is_made_again_after_rotation_and_only_it(void)
{
    in_sealed_child(rotate_audit_log, body_audit_reopen);
}

static void
link_audit_log_to_a_secret(void)
{
    CHECK(unlink(test_path(dir, "log/audit.log")) == 0);
    CHECK(link(test_path(dir, "secret/a.txt"), test_path(dir, "log/audit.log")) == 0);
}

static void
body_hard_link(void)
{
    int fd = privfile_open(test_path(dir, "log/audit.log"), PRIVFILE_APPEND);

    CHECK(fd < 0);
    CHECK_EQ_INT(errno, EMLINK);
    if (fd >= 0)
        close(fd);
}

static void
appending_through_a_hard_link_is_refused(void)
{
    in_sealed_child(link_audit_log_to_a_secret, body_hard_link);
    unlink(test_path(dir, "log/audit.log"));
}

static void
body_planted_link(void)
{
    int   e;
    char *text = read_as_reload("secret/planted", &e);

    CHECK(text == NULL);
    CHECK_EQ_INT(e, EPERM);
    free(text);
}

static void
a_symlink_the_service_user_planted_is_never_followed(void)
{
    CHECK(symlink(test_path(dir, "secret/b.txt"), test_path(dir, "secret/planted")) == 0);
    CHECK(lchown(test_path(dir, "secret/planted"), NOBODY, NOBODY) == 0);
    in_sealed_child(NULL, body_planted_link);
    unlink(test_path(dir, "secret/planted"));
}

static void
plant_audit_symlink(void)
{
    CHECK(unlink(test_path(dir, "log/audit.log")) == 0);
    CHECK(symlink(test_path(dir, "secret/a.txt"), test_path(dir, "log/audit.log")) == 0);
}

static void
body_audit_symlink(void)
{
    int         fd = privfile_open(test_path(dir, "log/audit.log"), PRIVFILE_APPEND);

    CHECK(fd < 0);
    CHECK_EQ_INT(errno, ELOOP);
}

static void
the_audit_log_is_never_opened_through_a_symlink(void)
{
    struct stat st;

    in_sealed_child(plant_audit_symlink, body_audit_symlink);
    CHECK(stat(test_path(dir, "secret/a.txt"), &st) == 0 && st.st_size == 5 && st.st_uid == 0);
    unlink(test_path(dir, "log/audit.log"));
}

static void
body_dot_dot(void)
{
    int   e;
    char *text = read_as_reload("users/../secret/./b.txt", &e);

    CHECK(text != NULL && strcmp(text, "beta") == 0);
    if (text == NULL)
        fprintf(stderr, "  errno %d\n", e);
    free(text);
}

static void
dot_and_dot_dot_resolve_as_realpath_does(void)
{
    in_sealed_child(NULL, body_dot_dot);
}

static void
without_a_reader_files_open_directly(void)
{
    char   err[512];
    size_t len;
    char  *text = privfile_read(test_path(dir, "secret/a.txt"), 1024, &len, err, sizeof(err));

    CHECK(text != NULL && len == 5 && strcmp(text, "alpha") == 0);
    free(text);
    text = privfile_read(test_path(dir, "secret/a.txt"), 4, &len, err, sizeof(err));
    CHECK(text == NULL && strstr(err, "file too large") != NULL);
    text = privfile_read(test_path(dir, "secret/none.txt"), 1024, &len, err, sizeof(err));
    CHECK(text == NULL && errno == ENOENT && strstr(err, "cannot open") != NULL);
    CHECK(privfile_check(test_path(dir, "secret/b.txt")) == 0);
}

int
main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_privfile: must run as root (what it tests only exists then)\n");
        return 1;
    }
    make_tree();
    RUN(a_reload_reads_a_root_only_file_beside_one_start_up_read);
    RUN(a_file_where_start_up_never_read_is_refused);
    RUN(a_symlink_out_of_a_known_directory_is_refused);
    RUN(a_fifo_is_refused_without_blocking_the_reader);
    RUN(a_listed_directory_is_listed_again_and_its_files_read);
    RUN(the_audit_log_is_made_again_after_rotation_and_only_it);
    RUN(appending_through_a_hard_link_is_refused);
    RUN(a_symlink_the_service_user_planted_is_never_followed);
    RUN(the_audit_log_is_never_opened_through_a_symlink);
    RUN(dot_and_dot_dot_resolve_as_realpath_does);
    RUN(without_a_reader_files_open_directly);
    return check_summary();
}
