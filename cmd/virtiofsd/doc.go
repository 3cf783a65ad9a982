// Command virtiofsd is a vhost-user virtio-fs back-end: it serves a host
// directory to a guest through a UNIX socket that a virtual machine monitor
// such as QEMU connects to. Its command line and behaviour follow virtiofsd
// 1.13 (the Rust implementation), so it can replace that program.
//
// Start-up is a fixed sequence of small steps (see run), each fatal on
// error with status 1 after one log line; usage errors exit with status 2
// before logging starts. The daemon accepts exactly one front-end
// connection, serves it until the front-end disconnects and then exits with
// status 0. SIGTERM and SIGHUP end it at once with status 1, leaving the
// socket and the pid file behind, as the reference does.
package main
