"""cgroup paths and container ids on real-looking /proc/PID/cgroup layouts."""

from __future__ import annotations

import pytest

from sysgram.collector.cgroups import Container, cgroup_path, container_of, is_within, normalize

ID = "3f1c0a9d2b7e4c5f8a6b1d0e9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"


@pytest.mark.parametrize("path,expected", [
    # docker, cgroupfs driver (v1 and v2) and systemd driver
    (f"/docker/{ID}", Container("docker", ID)),
    (f"/system.slice/docker-{ID}.scope", Container("docker", ID)),
    # Kubernetes + containerd, systemd driver and cgroupfs driver
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_6978_"
     f"8a9b_0c1d2e3f4a5b.slice/cri-containerd-{ID}.scope", Container("containerd", ID)),
    (f"/system.slice/containerd.service/kubepods-besteffort-pod1.slice:cri-containerd:{ID}",
     Container("containerd", ID)),
    (f"/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/{ID}",
     Container("containerd", ID)),
    (f"/default/{ID}", Container("containerd", ID)),
    # CRI-O
    (f"/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope", Container("cri-o", ID)),
    # podman: rootful, rootless (with /container below the scope)
    (f"/machine.slice/libpod-{ID}.scope", Container("podman", ID)),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container",
     Container("podman", ID)),
])
def test_container_layouts(path, expected):
    assert container_of(path) == expected


@pytest.mark.parametrize("path", [
    "/", "/system.slice/nginx.service", "/user.slice/user-1000.slice/session-3.scope",
    f"/machine.slice/libpod-conmon-{ID}.scope",     # podman's monitor, not the container
    f"/kubepods.slice/crio-conmon-{ID}.scope",       # CRI-O's monitor
    f"/docker/{ID[:-1]}",                            # not a full id
    None,
])
def test_paths_without_a_container(path):
    assert container_of(path) is None


def test_cgroup_v2_line():
    assert cgroup_path("0::/system.slice/nginx.service\n") == "/system.slice/nginx.service"


def test_hybrid_host_prefers_the_place_the_process_really_is():
    text = ("12:memory:/docker/" + ID + "\n1:name=systemd:/docker/" + ID + "\n0::/\n")
    assert cgroup_path(text) == f"/docker/{ID}"
    text = "4:memory:/process_api/bb54\n2:cpuacct:/\n0::/\n"
    assert cgroup_path(text) == "/process_api/bb54"
    assert cgroup_path("0::/\n") == "/"
    assert cgroup_path("") is None


def test_subtrees():
    root = normalize("/sys/fs/cgroup/system.slice/")
    assert root == "/system.slice"
    assert is_within("/system.slice/nginx.service", root)
    assert is_within("/system.slice", root)
    assert not is_within("/system.slicer/x", root)
    assert not is_within(None, root)
    assert is_within("/anything", normalize("/sys/fs/cgroup"))
