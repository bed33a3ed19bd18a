#!/bin/sh
# Usage: container-signatures.sh DIR
# Writes Intake's container signatures (intake-unscannable.ndb and .ldb) into DIR, clamd's
# database directory, each through a temporary name and a rename (clamd may read the
# directory at any moment: SelfCheck, RELOAD). Run by up.sh at every start and by the
# intake-clamd image's entrypoint at every container start (a volume mounted over
# /var/lib/clamav hides whatever the image held there). POSIX sh: the image is Alpine's
# busybox, without bash.
#
# Containers clamd unpacks but cuts short without any alert, even with AlertExceedsMax
# (measured on 1.4.6, infra/clamd/README.md): a CAB folder past MaxFileSize or MaxScanSize,
# and 7z members whose coder clamd lacks (deflate, bzip2: never scanned at all). clamd
# matches body signatures against every file it extracts at every depth (a mail
# attachment, a gzip or tar member, a PDF stream), so these make it name such a container
# wherever it sits; @intake/scanner reports "Intake.Unscannable.*" as unscannable.
#   CAB:  "MSCF" and reserved1 = 0, exactly what clamd takes for a cabinet (it opens one
#         whatever the other reserved fields and the version say; packages/pipeline's
#         EmbeddedCabCheck finds the cabinets with other reserved1 values, which clamd
#         does not open at all but cabextract does)
#   OddCAB: "MSCF", 14 bytes of any value, 00 00 (coffFiles < 64 KiB): a cabinet whatever its
#         reserved fields, so one clamd does not open (reserved1 != 0) is named where it is
#         extracted from a ZIP member, a PDF stream, a mail or uuencoded data, which the
#         raw-byte EmbeddedCabCheck cannot see
#   7z:   signature 37 7A BC AF 27 1C (7-Zip refuses major versions other than 0, clamd
#         does not open them: refused all the same)
# bzip2 and xz streams are unpacked only where a file starts with them: one appended to a
# PDF, a text or an image is never opened ("stream: OK" with EICAR inside). Offset range
# "1,4294967294" (offset 1 to 4 GiB) leaves the ones clamd does unpack, at offset 0, alone.
#   bzip2: "BZh", level 1-9, first block magic 31 41 59 26 53 59 (every decoder requires it)
#   xz:    magic FD 37 7A 58 5A 00, stream flags 00 and a known check type (none, CRC32/64, SHA-256)
set -eu

[ "$#" -eq 1 ] && [ -n "$1" ] || { echo "usage: $0 DATABASE_DIR" >&2; exit 2; }
DIR="$1"
[ -d "$DIR" ] && [ -w "$DIR" ] || { echo "[clamd] ERROR: cannot write the database directory $DIR (the Intake.Unscannable signatures must sit there)" >&2; exit 1; }

{
  printf 'Intake.Unscannable.CAB:0:*:4d53434600000000\n'
  printf 'Intake.Unscannable.7z:0:*:377abcaf271c\n'
  printf 'Intake.Unscannable.OddCAB:0:*:4d534346{12}????0000\n'
  printf 'Intake.Unscannable.EmbeddedBzip2:0:1,4294967294:425a68(31|32|33|34|35|36|37|38|39)314159265359\n'
  printf 'Intake.Unscannable.EmbeddedXz:0:1,4294967294:fd377a585a0000(00|01|04|0a)\n'
} >"$DIR/intake-unscannable.ndb.new"
mv -f "$DIR/intake-unscannable.ndb.new" "$DIR/intake-unscannable.ndb"

# A gzip past offset 0 of a file clamd extracted from a mail, uuencoded data or another
# compressed container: clamd opens a gzip only where a file starts with one, and the
# pipeline sees none of these (EmbeddedGzipCheck reads the raw object; the ZIP walk looks
# past offset 0 only in ZIP members and PDF streams themselves). The header is 1F 8B 08 and
# a flag byte without reserved bits (zlib refuses those): random data matches once in
# ~128 MiB, hence only inside these containers (Container: is the immediate one).
gzip_flags=""
i=0
while [ "$i" -le 31 ]; do
  gzip_flags="$gzip_flags${gzip_flags:+|}$(printf '%02x' "$i")"
  i=$((i + 1))
done
gzip_head="1f8b08($gzip_flags)"
{
  for c in MAIL UUENCODED GZ BZ XZ POSIX_TAR OLD_TAR ARJ SWF CPIO_NEWC CPIO_ODC CPIO_CRC CPIO_OLD; do
    printf 'Intake.Unscannable.GzipIn%s;Engine:51-255,Container:CL_TYPE_%s,Target:0;0;1,4294967294:%s\n' "$c" "$c" "$gzip_head"
  done
} >"$DIR/intake-unscannable.ldb.new"
mv -f "$DIR/intake-unscannable.ldb.new" "$DIR/intake-unscannable.ldb"
