package cli

import "strings"

// Version is printed by -V and --version.
const Version = "virtiofsd 1.13.3"

// helpEntry documents one option. summary is shown by -h and --help; detail
// paragraphs only by --help; def is the default shown in brackets.
type helpEntry struct {
	names   string
	notYet  bool // not implemented yet: refused when given
	summary string
	detail  []string
	def     string
}

var helpEntries = []helpEntry{
	{names: "--shared-dir <SHARED_DIR>", summary: "Host directory to export to the guest"},
	{names: "--tag <TAG>", summary: "Name of the file system as advertised in the device's configuration space",
		detail: []string{"Giving a tag makes the daemon offer the vhost-user CONFIG protocol feature, through which the front-end reads the tag (1 to 36 bytes). Many front-ends, QEMU included, take the tag from their own command line instead and ignore this value."}},
	{names: "--socket <SOCKET>", summary: "Path of the vhost-user socket to create [deprecated: use --socket-path]"},
	{names: "--socket-path <SOCKET_PATH>", summary: "Path of the vhost-user socket to create and listen on"},
	{names: "--socket-group <SOCKET_GROUP>", summary: "Group that owns the vhost-user socket (the socket is then group-accessible)"},
	{names: "--fd <FD>", summary: "Inherited file descriptor of a UNIX socket that is already listening"},
	{names: "--thread-pool-size <THREAD_POOL_SIZE>", summary: "Number of worker threads per request queue; 0 handles requests on the queue thread itself",
		def: "0"},
	{notYet: true, names: "--xattr", summary: "Give the guest access to extended attributes"},
	{notYet: true, names: "--posix-acl", summary: "Support POSIX access control lists (turns on --xattr)"},
	{notYet: true, names: "--xattrmap <XATTRMAP>", summary: "Rules that rename extended attributes between guest and host, e.g. :map::user.virtiofs.:"},
	{names: "--sandbox <SANDBOX>", summary: "How the daemon isolates itself from the host: namespace, chroot or none",
		detail: []string{
			"namespace: run in new mount, PID and network namespaces (and a user namespace when not started as root), with the shared directory as the root of the file system.",
			"chroot: chroot into the shared directory; root only, for containers that already have namespaces.",
			"none: no isolation.",
		},
		def: "namespace"},
	{names: "--readonly", summary: "Refuse every request that would modify the shared directory"},
	{names: "--seccomp <SECCOMP>", summary: "What happens when the daemon makes a system call outside its allow-list: none, kill, log or trap",
		def: "kill"},
	{names: "--announce-submounts", summary: "Mark mount points inside the shared directory as submounts for the guest [default]"},
	{names: "--no-announce-submounts", summary: "Present mount points inside the shared directory as ordinary directories"},
	{names: "--inode-file-handles=<INODE_FILE_HANDLES>", summary: "Whether inodes are held as file handles instead of O_PATH descriptors: never, prefer or mandatory",
		detail: []string{
			"never: always keep an O_PATH file descriptor per inode.",
			"prefer: use a file handle where the file system can produce one and fall back to an O_PATH descriptor elsewhere. \"fallback\" is an old name for this mode.",
			"mandatory: always use file handles; lookups fail where none can be made.",
			"File handles keep far fewer descriptors open, which matters for large trees and for network file systems that treat open files specially.",
		},
		def: "prefer"},
	{names: "--cache <CACHE>", summary: "Guest caching policy: auto, always, never or metadata",
		def: "auto"},
	{names: "--allow-mmap", summary: "Let the guest mmap shared files even with --cache=never or --cache=metadata; only safe when nothing else changes the directory"},
	{names: "--no-readdirplus", summary: "Do not offer READDIRPLUS to the guest"},
	{names: "--writeback", summary: "Let the guest cache writes (FUSE writeback cache)"},
	{names: "--allow-direct-io", summary: "Keep O_DIRECT when the guest opens files with it"},
	{names: "--print-capabilities", summary: "Print the vhost-user.json capabilities of this back-end and exit"},
	{names: "--modcaps <MODCAPS>", summary: "Add or remove capabilities from the retained set, e.g. --modcaps=+sys_admin:-chown"},
	{names: "--log-level <LOG_LEVEL>", summary: "Lowest severity that is logged: error, warn, info, debug, trace or off",
		def: "info"},
	{names: "--syslog", summary: "Send log messages to syslog instead of standard error"},
	{names: "--rlimit-nofile <RLIMIT_NOFILE>", summary: "Open file limit to set; 0 keeps the current limit",
		def: "min(1000000, '/proc/sys/fs/nr_open')"},
	{names: "-o <COMPAT_OPTIONS>", summary: "Comma-separated options in the syntax of the old C daemon [deprecated]",
		detail: []string{
			"Items: source=PATH, cache=auto|always|none|metadata, loglevel=debug|info|warn|err, sandbox=namespace|chroot, xattrmap=RULES, modcaps=SPEC, and the flags xattr, readdirplus, writeback, allow_direct_io, killpriv_v2, posix_acl and security_label, each also with a no_ prefix, plus announce_submounts, no_posix_lock and no_flock, which change nothing. They override the regular options wherever they appear.",
		}},
	{names: "-d", summary: "Same as --log-level debug [deprecated]"},
	{names: "--no-killpriv-v2", summary: "Do not offer FUSE_HANDLE_KILLPRIV_V2 [default]"},
	{names: "--killpriv-v2", summary: "Offer FUSE_HANDLE_KILLPRIV_V2 (the daemon clears setuid/setgid bits and capabilities on writes)"},
	{names: "-f", summary: "Accepted for compatibility; does nothing [deprecated]"},
	{notYet: true, names: "--security-label", summary: "Store the security context the guest sends with new files (turns on --xattr)"},
	{names: "--uid-map <UID_MAP>", summary: "User namespace UID mapping :namespace_uid:host_uid:count: for --sandbox=namespace",
		detail: []string{
			"The kernel applies this mapping to the user namespace the daemon runs in; compare --translate-uid, which the daemon applies itself.",
			"Example: :0:100000:65536: makes host UIDs 100000 to 165535 appear as 0 to 65535. Repeat the option to map several ranges.",
		}},
	{names: "--gid-map <GID_MAP>", summary: "User namespace GID mapping :namespace_gid:host_gid:count: for --sandbox=namespace",
		detail: []string{"Works like --uid-map, for group IDs."}},
	{notYet: true, names: "--translate-uid <TRANSLATE_UID>", summary: "UID translation done by the daemon, as <type>:<source base>:<target base>:<count>",
		detail: []string{
			"Types: guest (guest range to host range, one to one), host (host range to guest range, one to one), squash-guest (guest range to a single host UID), squash-host (host range to a single guest UID), forbid-guest (guest UIDs in the range are rejected; takes only a base and a count) and map (both directions, given as map:<guest base>:<host base>:<count>).",
			"Repeat the option to translate several ranges. Cannot be combined with --posix-acl.",
		}},
	{notYet: true, names: "--translate-gid <TRANSLATE_GID>", summary: "GID translation done by the daemon; same syntax as --translate-uid"},
	{names: "--preserve-noatime", summary: "Keep O_NOATIME when the guest opens files with it instead of dropping it"},
	{names: "--migration-mode <MIGRATION_MODE>", summary: "How open inodes are described to a migration destination: find-paths or file-handles",
		detail: []string{
			"find-paths: send the path of every inode the guest knows, found through /proc/self/fd or, failing that, by searching the shared directory.",
			"file-handles: send file handles; source and destination must serve the same file system and the destination needs CAP_DAC_READ_SEARCH.",
			"Only the source side uses this option.",
		},
		def: "find-paths"},
	{names: "--migration-on-error <MIGRATION_ON_ERROR>", summary: "What the destination does when an inode cannot be migrated: abort or guest-error",
		detail: []string{
			"abort: fail the migration. guest-error: finish it and answer the guest's requests for that inode with errors.",
			"Only the destination side uses this option.",
		},
		def: "abort"},
	{names: "--migration-verify-handles", summary: "With find-paths, let the destination check through file handles that it reopened the same inodes",
		detail: []string{"Needs source and destination to serve the same file system. Recommended when other processes may rename files during migration. Only the source side uses this option."}},
	{names: "--migration-confirm-paths", summary: "With find-paths, check every path again just before switching over to the destination",
		detail: []string{"This may lengthen the downtime of the switch-over. Only the source side uses this option."}},
}

const helpIntro = "Serve a host directory to a virtual machine as a virtio-fs device through a vhost-user socket.\n\n" + Usage + "\n\nOptions:\n"

// ShortHelp is printed by -h, and on standard error when there are no
// arguments.
var ShortHelp = buildHelp(false)

// LongHelp is printed by --help.
var LongHelp = buildHelp(true)

func buildHelp(long bool) string {
	var b strings.Builder
	b.WriteString(helpIntro)
	entry := func(names, summary string, detail []string, def string) {

		if strings.HasPrefix(names, "--") {
			b.WriteString("      ")
		} else {
			b.WriteString("  ")
		}
		b.WriteString(names)
		b.WriteString("\n          ")
		b.WriteString(summary)
		if long {
			for _, d := range detail {
				b.WriteString("\n\n          ")
				b.WriteString(d)
			}
		}
		if def != "" {
			if long && len(detail) > 0 {
				b.WriteString("\n\n          ")
			} else {
				b.WriteString(" ")
			}
			b.WriteString("[default: " + def + "]")
		}
		b.WriteString("\n")
		if long {
			b.WriteString("\n")
		}
	}
	for _, e := range helpEntries {
		summary := e.summary
		if e.notYet {
			summary += " (not supported yet)"
		}
		entry(e.names, summary, e.detail, e.def)
	}
	if long {
		entry("-h, --help", "Print help (a summary with '-h')", nil, "")
	} else {
		entry("-h, --help", "Print help (more with '--help')", nil, "")
	}
	entry("-V, --version", "Print version", nil, "")
	if long {
		// No blank line after the last entry.
		return strings.TrimSuffix(b.String(), "\n")
	}
	return b.String()
}
