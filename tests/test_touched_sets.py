"""Learned sets of what a binary touches: templates on real names, keys, the estimator."""

from __future__ import annotations

import os
import tempfile
import threading

from sysgram.models.touched import (
    TouchedSets,
    collapse,
    item_key,
    matches_template,
    novelty_per_minute,
    path_template,
)


def test_templates_of_real_proc_names_hold_for_every_process_and_thread():
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()][:50]
    assert len(pids) > 3
    assert {path_template(f"/proc/{pid}/stat") for pid in pids} == {"/proc/<pid>/stat"}
    tids = os.listdir(f"/proc/{os.getpid()}/task")
    assert {path_template(f"/proc/{os.getpid()}/task/{tid}/comm") for tid in tids} \
        == {"/proc/<pid>/task/<tid>/comm"}
    assert path_template("/proc/self/status") == "/proc/self/status"
    fds = os.listdir("/proc/self/fd")
    assert {path_template(f"/proc/self/fd/{fd}") for fd in fds} == {"/proc/self/fd/<n>"}


def test_templates_of_real_temp_names_hold_run_after_run():
    names = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(40):
            fd, path = tempfile.mkstemp(dir="/tmp")
            os.close(fd)
            os.unlink(path)
            names.append(path)
        names += [tempfile.mkdtemp(dir=scratch) for _ in range(5)]
    templates = {path_template(n) for n in names[:40]}
    assert templates == {"/tmp/tmp<random>"}, templates
    c_style = [f"/tmp/cc{suffix}.o" for suffix in ("Ab12Xy", "q9Zr2K", "x1y2z3")]
    assert {path_template(n) for n in c_style} == {"/tmp/<random>.o"}


def test_system_files_stay_exact_and_rotations_and_hashes_generalise():
    for path in ("/etc/passwd", "/etc/shadow", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                 "/usr/bin/sha256sum", "/bin/sh"):
        assert path_template(path) == path
    assert path_template("/var/log/nginx/access.log.1") \
        == path_template("/var/log/nginx/access.log.12") == "/var/log/nginx/access.log.<n>"
    assert path_template("/srv/cache/0123456789abcdef0123/x") == "/srv/cache/<hex>/x"
    assert path_template("relative/name") == "relative/name"


def test_a_crowded_directory_collapses_and_matches_any_name_in_it():
    learned = collapse({f"/var/www/page{i}x.html".replace("1", "one") for i in range(40)}
                       | {"/etc/nginx/nginx.conf"}, limit=32)
    assert "/var/www/*" in learned and "/etc/nginx/nginx.conf" in learned
    assert matches_template("/var/www/brand-new.html", learned)
    assert not matches_template("/etc/passwd", learned)


def _rec(kind, ts=0, **fields):
    return {"kind": kind, "ts_ns": ts, **fields}


def test_keys_generalise_peers_and_skip_failed_calls():
    nets = ()
    connect = _rec("connect", peer={"family": "ipv4", "address": "127.0.0.1", "port": 5432},
                   protocol="tcp", result=0)
    assert item_key(connect, nets) == ("peers", "connect tcp loopback:5432")
    refused = dict(connect, result=-111)
    assert item_key(refused, nets) is None
    accept = _rec("accept", peer={"family": "ipv4", "address": "10.1.2.3", "port": 4000},
                  protocol="tcp", result=5)
    assert item_key(accept, nets) == ("peers", "accept tcp any-client")
    bind = _rec("bind", peer={"family": "ipv6", "address": "::", "port": 8080},
                protocol="tcp")
    assert item_key(bind, nets) == ("listens", "tcp :::8080")
    assert item_key(_rec("exec", path="/bin/true", result=-2), nets) is None
    assert item_key(_rec("exec", path="/bin/true", result=0), nets) == ("programs", "/bin/true")


def test_sets_learn_and_flag_only_what_is_new_once_and_allow_lists_silence_it():
    minute = 60_000_000_000
    train = [_rec("open", 1, path=f"/proc/{p}/stat") for p in (10, 11)] + [
        _rec("open", 2, path="/etc/hosts"),
        _rec("exec", 3 * minute, path="/bin/true", result=0),
        _rec("connect", 3 * minute, protocol="tcp", result=0,
             peer={"family": "ipv4", "address": "127.0.0.1", "port": 80}),
    ]
    sets = TouchedSets(networks=()).fit(train)
    assert sets.novelty_curve_ == [2, 0, 2]          # /proc/<pid>/stat is one key
    assert sets.novelty_by_set_ == {"programs": [0, 0, 1], "files": [2, 0, 0],
                                    "peers": [0, 0, 1], "listens": [0, 0, 0]}
    live = [_rec("open", path="/proc/99/stat"), _rec("open", path="/etc/passwd"),
            _rec("open", path="/etc/passwd"),
            _rec("exec", path="/bin/sh", result=0),
            _rec("connect", protocol="tcp", result=0,
                 peer={"family": "ipv4", "address": "8.8.8.8", "port": 53})]
    assert [(s, k) for s, k, _ in sets.new_items(live)] == [
        ("files", "/etc/passwd"), ("programs", "/bin/sh"), ("peers", "connect tcp 8.8.8.8:53")]
    sets.set_params(allow_files=("/etc/pass*",), allow_execs=("/bin/sh",),
                    allow_peers=("8.8.8.8:53",))
    assert sets.new_items(live) == []


def test_novelty_curve_spans_the_whole_training_time():
    minute = 60_000_000_000
    assert novelty_per_minute([minute], minute, 4 * minute) == [1, 0, 0, 0]
    assert novelty_per_minute([], 0, 0) == []


def test_thread_ids_template_even_for_a_fresh_thread():
    seen = []
    worker = threading.Thread(target=lambda: seen.append(threading.get_native_id()))
    worker.start()
    worker.join()
    assert path_template(f"/proc/{os.getpid()}/task/{seen[0]}/stat") \
        == "/proc/<pid>/task/<tid>/stat"


def test_an_unreadable_path_is_an_item_of_its_own_not_a_blind_spot():
    unreadable = {"kind": "open", "path": "", "unreadable": True}
    assert item_key(unreadable) == ("files", "<unreadable>")
    sets = TouchedSets(networks=()).fit([{"kind": "open", "path": "/etc/hosts", "ts_ns": 1}])
    assert [k for _, k, _ in sets.new_items([unreadable])] == ["<unreadable>"]
    learned = TouchedSets(networks=()).fit([dict(unreadable, ts_ns=1)])
    assert learned.new_items([unreadable]) == []
    hidden_peer = {"kind": "connect", "result": 0, "protocol": "tcp", "unreadable": True}
    assert item_key(hidden_peer) == ("peers", "connect tcp <unreadable>")


def test_relative_paths_are_matched_and_end_the_directory_walk():
    """openat from a dirfd gives relative paths: the walk up their directories ends (it
    looped forever on 'a/b' and 'a', and hung the watcher on a shell's first relative
    open)."""
    import multiprocessing

    from sysgram.models.touched import matches_template

    def walk(queue) -> None:
        queue.put([matches_template("foo/bar", frozenset({"/etc/passwd"})),
                   matches_template("bar", frozenset({"/etc/passwd"})),
                   matches_template("foo/bar", frozenset({"foo/*"})),
                   matches_template("/srv/www/a/b.html", frozenset({"/srv/www/*"}))])

    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=walk, args=(queue,))
    child.start()
    child.join(10)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the directory walk never ended"
    assert queue.get(timeout=1) == [False, False, True, True]


def test_a_training_that_captured_nothing_learns_empty_sets_not_none():
    from sysgram.models.touched import FirstSeen, fit_touched

    # A database under a steady load opens no file while training: the first file it
    # opens after (LOAD_FILE('/etc/passwd')) must be news, not unwatched.
    quiet = FirstSeen(())
    quiet.mark_captured()
    sets = fit_touched(quiet)
    assert sets is not None and all(len(keys) == 0 for keys in sets.sets_.values())
    new = sets.new_items([{"kind": "open", "path": "/etc/passwd", "result": 3}])
    assert [(name, key) for name, key, _ in new] == [("files", "/etc/passwd")]
    # Without capture (an imported corpus, an old recording) there is nothing to learn.
    assert fit_touched(FirstSeen(())) is None



def _crowd(prefix: str, suffix: str = "", count: int = 40) -> list[str]:
    """`count` distinct letter-only names (digits would be templated into one)."""
    return [f"{prefix}{chr(97 + i % 26)}{chr(97 + i // 26)}{suffix}" for i in range(count)]


def _fit(paths: list[str], **extra) -> TouchedSets:
    return TouchedSets(networks=()).fit([_rec("open", 1, path=p, **extra) for p in paths])


def test_dot_dot_is_resolved_before_templating_so_it_cannot_climb_out_of_a_web_root():
    sets = _fit(_crowd("/srv/www/page", ".html"))
    assert "/srv/www/*" in sets.sets_["files"]
    climbs = [_rec("open", path="/srv/www/../../etc/shadow"),
              _rec("open", path="/srv/www/./../../etc//passwd"),
              _rec("open", path="//srv/www/../../root/.ssh/id_rsa")]
    assert [k for _, k, _ in sets.new_items(climbs)] == [
        "/etc/shadow", "/etc/passwd", "/root/.ssh/id_rsa"]
    assert sets.new_items([_rec("open", path="/srv/www/x/../index.html")]) == []
    assert path_template("//tmp/./a/../tmpab3_xyz9") == "/tmp/tmp<random>"
    sets.set_params(allow_files=("/srv/www/*",))       # an allow-list matches it too
    assert len(sets.new_items(climbs)) == 3
    # A relative path (from a dirfd) that climbs matches only an identical entry.
    assert matches_template("foo/bar", frozenset({"foo/*"}))
    assert not matches_template("foo/../../etc/shadow", frozenset({"foo/*"}))
    assert matches_template("foo/../x", frozenset({"foo/../x"}))


def test_crowded_system_directories_never_collapse_to_a_wildcard():
    sets = _fit(_crowd("/etc/conf") + _crowd("/home/alice/.ssh/key") + _crowd("/usr/bin/tool")
                + _crowd("/proc/1/x"))
    assert not {"/etc/*", "/home/alice/.ssh/*", "/usr/bin/*", "/proc/<pid>/*"} \
        & sets.sets_["files"]
    assert sets.kept_exact_ == 160
    new = sets.new_items([_rec("open", path="/etc/shadow"), _rec("open", path="/usr/bin/nc"),
                          _rec("open", path="/proc/1/mem")])
    assert [k for _, k, _ in new] == ["/etc/shadow", "/usr/bin/nc", "/proc/<pid>/mem"]
    top = {"/" + name for name in _crowd("")}
    assert collapse(top, 32) == top
    assert "/var/www/*" in collapse(_crowd("/var/www/p"), 32)
    assert "/dev/shm/*" in collapse(_crowd("/dev/shm/seg"), 32)


def test_a_cut_path_never_matches_a_wildcard_only_the_same_learned_cut_path():
    web_root = _crowd("/srv/www/page", ".html")
    long_name = "/srv/www/" + "a" * 246                       # 255 bytes: filled the buffer
    cut = _rec("open", path=long_name, cut=True)
    sets = _fit(web_root)
    assert "/srv/www/*" in sets.sets_["files"]
    # What the kernel did not read could be `/../../../etc/shadow`.
    assert [k for _, k, _ in sets.new_items([cut])] == [long_name + "//<cut>"]
    sets.set_params(allow_files=("/srv/www/*",))
    assert len(sets.new_items([cut])) == 1
    learned = TouchedSets(networks=()).fit([_rec("open", 1, path=p) for p in web_root]
                                           + [dict(cut, ts_ns=1)])
    assert learned.new_items([cut]) == []
    # The same text whole (not cut) is a name in the web root, and no cut path is whole.
    assert learned.new_items([_rec("open", path=long_name)]) == []
    assert not matches_template(long_name, frozenset({long_name + "//<cut>"}))
    # An exec whose argument was cut has its path whole.
    assert item_key(_rec("exec", path="/bin/sh", result=0, cut=True)) == ("programs", "/bin/sh")
