using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Adp.IO;

/// <summary>
/// The safetensors format: 8-byte little-endian header length, a JSON header (name → dtype, shape,
/// data_offsets; optional "__metadata__" string map), then the raw little-endian tensor data.
/// </summary>
public static class SafeTensors
{
    public sealed class File : IDisposable
    {
        public required Dictionary<string, Tensor> Tensors { get; init; }
        public required Dictionary<string, string> Metadata { get; init; }
        public required string Path { get; init; }

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
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    public static File Load(string path)
    {
        if (!System.IO.File.Exists(path)) throw new AdpException($"{path}: file not found");
        return Parse(System.IO.File.ReadAllBytes(path), path);
    }

    public static File Parse(byte[] bytes, string path)
    {
        if (bytes.Length < 8) throw new AdpException($"{path}: truncated safetensors file ({bytes.Length} bytes)");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > (ulong)bytes.Length - 8) throw new AdpException($"{path}: truncated safetensors header (header says {n} bytes, file has {bytes.Length - 8})");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n)); }
        catch (JsonException) { throw new AdpException($"{path}: not a safetensors file (header is not JSON)"); }
        long dataStart = 8 + (long)n;
        var tensors = new Dictionary<string, Tensor>();
        var meta = new Dictionary<string, string>();
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new AdpException($"{path}: not a safetensors file (header is not a JSON object)");
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    foreach (var m in prop.Value.EnumerateObject()) meta[m.Name] = m.Value.GetString() ?? "";
                    continue;
                }
                string dtype = prop.Value.GetProperty("dtype").GetString() ?? "";
                if (!DTypes.TryGetValue(dtype, out var dt)) throw new AdpException($"{path}: tensor '{prop.Name}' has unsupported dtype {dtype}");
                long[] shape = prop.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offs = prop.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long count = shape.Aggregate(1L, (a, b) => a * b);
                if (offs.Length != 2 || offs[1] - offs[0] != count * dt.Size)
                    throw new AdpException($"{path}: tensor '{prop.Name}' has data_offsets that do not match its shape");
                if (dataStart + offs[1] > bytes.Length)
                    throw new AdpException($"{path}: truncated (tensor '{prop.Name}' ends at byte {dataStart + offs[1]}, file has {bytes.Length})");
                var t = empty(shape, dt.Type);
                if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian host");
                var span = bytes.AsSpan((int)(dataStart + offs[0]), (int)(offs[1] - offs[0]));
                t.bytes = span.ToArray();
                tensors[prop.Name] = t;
            }
        }
        return new File { Tensors = tensors, Metadata = meta, Path = path };
    }

    public static byte[] Serialize(IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            using var t = tensor.detach().cpu().contiguous();
            var dt = DTypes.First(kv => kv.Value.Type == t.dtype);
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
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        AtomicFile.Write(path, Serialize(tensors, metadata));
}

public static class AtomicFile
{
    /// <summary>Write to a temporary file next to <paramref name="path"/>, flush, then rename over it, so a crash
    /// or Ctrl-C never leaves a half-written file and never destroys the previous version.</summary>
    public static void Write(string path, byte[] bytes)
    {
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var tmp = full + $".tmp{Environment.ProcessId}";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }
        System.IO.File.Move(tmp, full, overwrite: true);
    }
}
