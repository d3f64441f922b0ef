// The disk format of a file from its first bytes (and the last 512, for a fixed VHD).
// Only a suggestion for the form: the service inspects every upload itself.

const ascii = (bytes, offset, text) => [...text].every((c, i) => bytes[offset + i] === c.charCodeAt(0));

export const DISK_FORMATS = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ploop", "ami", "ari", "aki"];

/** "qcow2", "vmdk", "vhdx", "vhd", "vdi", "iso" or "raw". Reads at most 64 KiB + 512 bytes. */
export async function sniffDiskFormat(file) {
  const head = new Uint8Array(await file.slice(0, 65536).arrayBuffer());
  if (ascii(head, 0, "QFI\xfb")) return "qcow2";
  if (ascii(head, 0, "KDMV") || ascii(head, 0, "# Disk DescriptorFile")) return "vmdk";
  if (ascii(head, 0, "vhdxfile")) return "vhdx";
  if (ascii(head, 0, "conectix")) return "vhd";
  if (head.length >= 68 && head[64] === 0x7f && head[65] === 0x10 && head[66] === 0xda && head[67] === 0xbe) return "vdi";
  if (ascii(head, 0x8001, "CD001")) return "iso";
  if (file.size >= 512) {
    const tail = new Uint8Array(await file.slice(file.size - 512).arrayBuffer());
    if (ascii(tail, 0, "conectix")) return "vhd";
  }
  return "raw";
}
