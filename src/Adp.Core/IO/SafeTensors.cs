using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Adp.IO;

/// <summary>
/// The safetensors format: 8-byte little-endian header length N, an N-byte UTF-8 JSON header (name → dtype, shape,
/// data_offsets; optional "__metadata__" string map), then the data section, raw little-endian tensor data.
/// Reading enforces every rule of the format (see <see cref="Load"/>); a file that breaks one is refused with an
/// <see cref="AdpException"/> naming the file and the rule.
/// </summary>
public static class SafeTensors
{
    /// <summary>Largest header accepted, as in the reference implementation: 100 MB.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The metadata key of the header; every other key names a tensor.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>A loaded safetensors file: its tensors (in the file's dtypes) and its metadata.</summary>
    public sealed class File : IDisposable
    {
        /// <summary>The tensors by name, in the dtype the file stores them in.</summary>
        public required Dictionary<string, Tensor> Tensors { get; init; }

        /// <summary>The "__metadata__" string map (empty when the file has none).</summary>
        public required Dictionary<string, string> Metadata { get; init; }

        /// <summary>The file the tensors were read from, for error messages.</summary>
        public required string Path { get; init; }

        /// <summary>The named tensor, or an <see cref="AdpException"/> naming the file and the tensor.</summary>
        public Tensor Get(string name) => Tensors.TryGetValue(name, out var t) ? t
            : throw new AdpException($"{Path}: tensor '{name}' is missing");

        public void Dispose()
        {
            foreach (var t in Tensors.Values) t.Dispose();
        }
    }

    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F32"] = (ScalarType.Float32, 4), ["F64"] = (ScalarType.Float64, 8), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>Dtypes the format defines that adp does not read.</summary>
    private static readonly HashSet<string> OtherFormatDTypes =
        ["U16", "U32", "U64", "C64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "E8M0"];

    private static readonly string[] EntryKeys = ["dtype", "shape", "data_offsets"];

    /// <summary>One tensor's header entry, checked.</summary>
    private sealed record Entry(string Name, ScalarType Type, long[] Shape, long Begin, long End);

    /// <summary>
    /// Reads and checks a safetensors file. The rules: the header length is at most 100 MB and fits in the file
    /// (checked before anything is allocated); the header is a UTF-8 JSON object starting with '{'; "__metadata__",
    /// if present, is an object of string → string; every other key names a tensor whose entry is an object with
    /// exactly a string "dtype" (a known dtype), a "shape" array of non-negative integers and "data_offsets", two
    /// non-negative integers [begin, end] relative to the data section with begin ≤ end ≤ its length and
    /// end − begin = product(shape) · dtype size; no key appears twice; and the tensors, taken in offset order, cover
    /// the data section exactly, without overlaps or holes.
    /// </summary>
    public static File Load(string path)
    {
        if (!System.IO.File.Exists(path)) throw new AdpException($"{path}: file not found");
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            return Read(fs, path);
        }
        catch (IOException e) { throw new AdpException($"{path}: cannot read ({OneLine(e.Message)})", e); }
        catch (UnauthorizedAccessException e) { throw new AdpException($"{path}: cannot read ({OneLine(e.Message)})", e); }
    }

    /// <summary>Reads a safetensors file held in memory, with the checks of <see cref="Load"/>;
    /// <paramref name="path"/> names it in error messages.</summary>
    public static File Parse(byte[] bytes, string path)
    {
        using var ms = new MemoryStream(bytes, writable: false);
        return Read(ms, path);
    }

    private static File Read(Stream s, string path)
    {
        long length = s.Length;
        if (length < 8) throw new AdpException($"{path}: truncated safetensors file ({length} bytes; the header length alone takes 8)");
        Span<byte> prefix = stackalloc byte[8];
        s.ReadExactly(prefix);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (n > MaxHeaderBytes)
            throw new AdpException(
                $"{path}: not a safetensors file (header length {n} exceeds the format's limit of {MaxHeaderBytes} bytes)");
        if (n > (ulong)(length - 8))
            throw new AdpException(
                $"{path}: truncated safetensors header (header says {n} bytes, file has {length - 8} after the length)");
        var header = new byte[n];
        s.ReadExactly(header);
        long dataStart = 8 + (long)n, dataLength = length - dataStart;
        var (entries, meta) = ParseHeader(header, dataLength, path);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian host");
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var e in entries)
            {
                long size = e.End - e.Begin;
                if (size > Array.MaxLength)
                    throw new AdpException(
                        $"{path}: tensor {Quote(e.Name)} has {size} bytes; adp reads tensors of at most {Array.MaxLength} bytes");
                var buf = new byte[size];
                s.Position = dataStart + e.Begin;
                s.ReadExactly(buf);
                var t = empty(e.Shape, e.Type);
                tensors[e.Name] = t;
                if (size > 0) t.bytes = buf;
            }
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return new File { Tensors = tensors, Metadata = meta, Path = path };
    }

    /// <summary>Checks the header against every rule of the format; returns the entries and the metadata.</summary>
    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(byte[] header, long dataLength, string path)
    {
        AdpException Bad(string rule) => new($"{path}: invalid safetensors header: {rule}");
        if (header.Length == 0 || header[0] != (byte)'{') throw Bad("it must be a JSON object starting with '{'");
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw Bad("it is not valid UTF-8");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Bad($"not valid UTF-8 JSON ({OneLine(e.Message)})"); }
        var entries = new List<Entry>();
        var meta = new Dictionary<string, string>();
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("it must be a JSON object");
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!names.Add(prop.Name)) throw Bad($"key {Quote(prop.Name)} appears twice");
                if (prop.Name == MetadataKey) ReadMetadata(prop.Value, meta, Bad);
                else entries.Add(ReadEntry(prop.Name, prop.Value, dataLength, Bad));
            }
        }
        // The format requires the tensors, in offset order, to fill the data section: no overlaps, no holes.
        long expected = 0;
        Entry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < expected)
                throw Bad($"tensors {Quote(previous!.Name)} [{previous.Begin}, {previous.End}] and "
                          + $"{Quote(e.Name)} [{e.Begin}, {e.End}] overlap");
            if (e.Begin > expected)
                throw Bad($"bytes [{expected}, {e.Begin}] of the data section belong to no tensor (the format allows no holes)");
            expected = e.End;
            previous = e;
        }
        if (expected != dataLength)
            throw Bad($"bytes [{expected}, {dataLength}] at the end of the data section belong to no tensor (the format allows no holes)");
        return (entries, meta);
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> meta, Func<string, AdpException> bad)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw bad($"'{MetadataKey}' must be an object of string → string, got {Describe(value)}");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw bad($"'{MetadataKey}' must map strings to strings; {Quote(m.Name)} is {Describe(m.Value)}");
            if (!meta.TryAdd(m.Name, m.Value.GetString()!)) throw bad($"'{MetadataKey}' has the key {Quote(m.Name)} twice");
        }
    }

    private static Entry ReadEntry(string name, JsonElement value, long dataLength, Func<string, AdpException> bad)
    {
        string tensor = $"tensor {Quote(name)}";
        if (value.ValueKind != JsonValueKind.Object)
            throw bad($"{tensor}: entry must be an object with dtype, shape and data_offsets, got {Describe(value)}");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in value.EnumerateObject())
        {
            if (!EntryKeys.Contains(p.Name))
                throw bad($"{tensor}: unknown key {Quote(p.Name)} (an entry has exactly dtype, shape and data_offsets)");
            if (!keys.Add(p.Name)) throw bad($"{tensor}: key {Quote(p.Name)} appears twice");
        }
        foreach (var k in EntryKeys)
            if (!keys.Contains(k)) throw bad($"{tensor}: entry lacks '{k}' (an entry has exactly dtype, shape and data_offsets)");

        var dtypeElement = value.GetProperty("dtype");
        if (dtypeElement.ValueKind != JsonValueKind.String) throw bad($"{tensor}: dtype must be a string, got {Describe(dtypeElement)}");
        string dtype = dtypeElement.GetString()!;
        if (!DTypes.TryGetValue(dtype, out var dt))
            throw bad(OtherFormatDTypes.Contains(dtype)
                ? $"{tensor}: dtype {dtype} is not supported by adp (supported: {string.Join(", ", DTypes.Keys)})"
                : $"{tensor}: unknown dtype {Quote(dtype)} (known: {string.Join(", ", DTypes.Keys.Concat(OtherFormatDTypes))})");

        var shapeElement = value.GetProperty("shape");
        var shape = NonNegativeIntegers(shapeElement)
                    ?? throw bad($"{tensor}: shape must be an array of non-negative integers, got {Describe(shapeElement)}");
        long bytes;
        try { bytes = checked(shape.Aggregate(1L, (a, b) => a * b) * dt.Size); }
        catch (OverflowException) { throw bad($"{tensor}: shape [{string.Join(",", shape)}] has too many elements"); }

        var offsetsElement = value.GetProperty("data_offsets");
        var offs = NonNegativeIntegers(offsetsElement);
        if (offs is not { Length: 2 })
            throw bad($"{tensor}: data_offsets must be two non-negative integers [begin, end], got {Describe(offsetsElement)}");
        long begin = offs[0], end = offs[1];
        if (begin > end) throw bad($"{tensor}: data_offsets [{begin}, {end}] must have begin ≤ end");
        if (end > dataLength)
            throw bad($"{tensor}: data_offsets [{begin}, {end}] end past the data section ({dataLength} bytes; truncated file?)");
        if (end - begin != bytes)
            throw bad($"{tensor}: data_offsets [{begin}, {end}] span {end - begin} bytes, "
                      + $"but shape [{string.Join(",", shape)}] of {dtype} needs {bytes}");
        return new Entry(name, dt.Type, shape, begin, end);
    }

    /// <summary>The array's elements as non-negative 64-bit integers, or null if it is not such an array
    /// (1.0, 4e0, -1, "1" and nested arrays are all refused).</summary>
    private static long[]? NonNegativeIntegers(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Array) return null;
        var values = new List<long>();
        foreach (var x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out long v) || v < 0) return null;
            // TryGetInt64 accepts only integer literals: "4.0" and "4e0" fail, as the format's unsigned integers do.
            values.Add(v);
        }
        return values.ToArray();
    }

    /// <summary>A JSON value for an error message: its kind and (shortened) text, on one line.</summary>
    private static string Describe(JsonElement e)
    {
        string kind = e.ValueKind switch
        {
            JsonValueKind.Object => "an object", JsonValueKind.Array => "an array", JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number", JsonValueKind.True or JsonValueKind.False => "a boolean", _ => "null",
        };
        return $"{kind} {Shorten(e.GetRawText())}";
    }

    /// <summary>A name from the file, quoted, on one line and at most about 80 characters.</summary>
    private static string Quote(string name) => $"'{Shorten(name)}'";

    private static string Shorten(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s.Length > 80 ? s[..80] : s)
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c);
        return s.Length > 80 ? sb + "…" : sb.ToString();
    }

    private static string OneLine(string s) => s.Split('\n')[0].Trim();

    /// <summary>The file's bytes for the given tensors (names unique, none "__metadata__") and metadata, with the
    /// data 8-byte aligned as the reference implementation writes it.</summary>
    public static byte[] Serialize(IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header[MetadataKey] = metadata;
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            if (header.ContainsKey(name)) throw new ArgumentException($"safetensors: the name '{name}' is used twice (or is reserved)");
            using var t = tensor.detach().cpu().contiguous();
            var dt = DTypes.FirstOrDefault(kv => kv.Value.Type == t.dtype);
            if (dt.Key is null) throw new AdpException($"safetensors: tensor '{name}' has dtype {t.dtype}, which adp does not write");
            var data = t.bytes.ToArray();
            header[name] = new { dtype = dt.Key, shape = t.shape, data_offsets = new[] { offset, offset + data.Length } };
            blobs.Add(data);
            offset += data.Length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int pad = (8 - json.Length % 8) % 8;  // keep data 8-byte aligned, as the reference implementation does
        var headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';
        using var ms = new MemoryStream();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
        ms.Write(len);
        ms.Write(headerBytes);
        foreach (var b in blobs) ms.Write(b);
        return ms.ToArray();
    }

    /// <summary>Writes atomically: a temporary file in the same folder, then a rename.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        AtomicFile.Write(path, Serialize(tensors, metadata));
}

/// <summary>
/// Writes a file so that a crash, a kill or a full disk never leaves it half-written and never destroys the previous
/// version: the bytes go to a temporary file next to it (<c>NAME.tmpPID</c>), which is flushed to disk (fsync) and then
/// renamed over it; the folder is fsynced too, so the rename itself survives a power cut. A write that fails (full
/// disk, read-only or missing permission) removes the temporary file and is an <see cref="AdpException"/> naming the
/// file and the reason. Temporary files left by processes that were killed while writing the same file are removed
/// after the next successful write.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, byte[] bytes) => Write(path, s => s.Write(bytes));

    /// <summary>As <see cref="Write(string, byte[])"/>, with the content written by <paramref name="write"/>.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var full = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(full)!;
        var tmp = TemporaryPath(full, Environment.ProcessId);
        try
        {
            Directory.CreateDirectory(dir);
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            System.IO.File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { System.IO.File.Delete(tmp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { /* nothing was created */ }
            throw new AdpException($"{full}: cannot write ({Reason(e)}); the previous version, if any, is unchanged", e);
        }
        FsyncFolder(dir);
        RemoveStaleTemporaries(full);
    }

    /// <summary>The temporary file a process writes <paramref name="full"/> through.</summary>
    public static string TemporaryPath(string full, int processId) => full + $".tmp{processId}";

    /// <summary>The reason of a failed write in words: the system's message without the path it repeats.</summary>
    public static string Reason(Exception e)
    {
        var m = e.Message.Split('\n')[0].Trim();
        int quote = m.IndexOf(" : '", StringComparison.Ordinal);
        if (quote > 0) m = m[..quote];
        return e is UnauthorizedAccessException ? $"permission denied or read-only: {m.TrimEnd('.')}" : m.TrimEnd('.');
    }

    /// <summary>Deletes NAME.tmpPID files of <paramref name="full"/> whose process no longer runs (killed while writing).</summary>
    private static void RemoveStaleTemporaries(string full)
    {
        try
        {
            var dir = System.IO.Path.GetDirectoryName(full)!;
            var prefix = System.IO.Path.GetFileName(full) + ".tmp";
            foreach (var f in Directory.EnumerateFiles(dir, prefix + "*"))
            {
                var rest = System.IO.Path.GetFileName(f)[prefix.Length..];
                if (int.TryParse(rest, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid)
                    && pid != Environment.ProcessId && !ProcessRuns(pid))
                    System.IO.File.Delete(f);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* cleaning up is best effort */ }
    }

    private static bool ProcessRuns(int pid)
    {
        if (OperatingSystem.IsLinux()) return Directory.Exists($"/proc/{pid}");
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int open([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int fsync(int fd);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    /// <summary>fsync of the folder (POSIX): makes the rename durable. Best effort; not done on Windows.</summary>
    private static void FsyncFolder(string dir)
    {
        if (OperatingSystem.IsWindows()) return;
        try
        {
            int fd = open(dir, 0);  // O_RDONLY
            if (fd < 0) return;
            fsync(fd);
            close(fd);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }
}
