using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace Adp.Tests.Fuzz;

/// <summary>One edit of an input. Positions are fractions of the input's length (so an edit applies to any seed);
/// <see cref="HeaderBias"/> edits fall in the first <c>headerBytes</c> bytes, where the fields that size everything are.</summary>
public abstract record Mutation
{
    public abstract byte[] Apply(byte[] b, byte[][] seeds, int headerBytes);

    protected static int At(byte[] b, double f, bool header, int headerBytes) =>
        b.Length == 0 ? 0 : Math.Min(b.Length - 1, (int)(f * (header ? Math.Min(b.Length, Math.Max(1, headerBytes)) : b.Length)));
}

public sealed record BitFlip(double Pos, int Bit, bool Header) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        if (b.Length == 0) return b;
        var r = (byte[])b.Clone();
        r[At(b, Pos, Header, h)] ^= (byte)(1 << Bit);
        return r;
    }
}

public sealed record SetByte(double Pos, byte Value, bool Header) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        if (b.Length == 0) return b;
        var r = (byte[])b.Clone();
        r[At(b, Pos, Header, h)] = Value;
        return r;
    }
}

/// <summary>Overwrites 2, 4 or 8 bytes with an extreme integer (0, ±1, the type's limits, powers of two), in either
/// byte order: the header fields that claim sizes and counts.</summary>
public sealed record SetInteger(double Pos, int Width, int ValueIndex, bool BigEndian, bool Header) : Mutation
{
    public static readonly ulong[] Values =
    [
        0, 1, 2, 3, 4, 7, 8, 9, 10, 16, 28, 32, 255, 256, 1000, 3072, 3073, 10000, 60000, 65535, 65536, 0x7fff, 0x8000,
        0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x7fffffffffffffff, 0x8000000000000000, ulong.MaxValue,
        ulong.MaxValue - 1, 1UL << 40, 1UL << 50, 100_000_000, 100_000_001,
    ];

    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        if (b.Length < Width) return b;
        var r = (byte[])b.Clone();
        int at = Math.Min(At(b, Pos, Header, h), b.Length - Width);
        ulong v = Values[ValueIndex % Values.Length];
        var span = r.AsSpan(at, Width);
        switch (Width, BigEndian)
        {
            case (2, true): BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)v); break;
            case (2, false): BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)v); break;
            case (4, true): BinaryPrimitives.WriteUInt32BigEndian(span, (uint)v); break;
            case (4, false): BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)v); break;
            case (_, true): BinaryPrimitives.WriteUInt64BigEndian(span, v); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(span, v); break;
        }
        return r;
    }
}

public sealed record Truncate(double Keep) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h) => b[..(int)(b.Length * Keep)];
}

public sealed record DeleteRange(double Pos, int Length, bool Header) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        if (b.Length == 0) return b;
        int at = At(b, Pos, Header, h), n = Math.Min(Length, b.Length - at);
        return [.. b.AsSpan(0, at), .. b.AsSpan(at + n)];
    }
}

public sealed record InsertBytes(double Pos, byte[] Bytes, bool Header) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        int at = b.Length == 0 ? 0 : At(b, Pos, Header, h);
        return [.. b.AsSpan(0, at), .. Bytes, .. b.AsSpan(at)];
    }
}

/// <summary>Repeats a range of the input (grows counts and lengths the header does not claim).</summary>
public sealed record DuplicateRange(double Pos, int Length) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        if (b.Length == 0) return b;
        int at = At(b, Pos, false, h), n = Math.Min(Length, b.Length - at);
        return [.. b.AsSpan(0, at + n), .. b.AsSpan(at, n), .. b.AsSpan(at + n)];
    }
}

/// <summary>The head of this input joined to the tail of another seed.</summary>
public sealed record Splice(int Other, double Cut, double OtherCut) : Mutation
{
    public override byte[] Apply(byte[] b, byte[][] seeds, int h)
    {
        var o = seeds[Other % seeds.Length];
        return [.. b.AsSpan(0, (int)(b.Length * Cut)), .. o.AsSpan((int)(o.Length * OtherCut))];
    }
}

/// <summary>Generators of inputs: mutated seeds and inputs made from scratch.</summary>
public static class Inputs
{
    private static readonly Gen<double> Fraction = Gen.Double[0, 1];
    private static readonly Gen<bool> HeaderBias = Gen.Frequency((3, Gen.Const(true)), (2, Gen.Const(false)));

    public static readonly Gen<Mutation> AnyMutation = Gen.Frequency<Mutation>(
        (4, Gen.Select(Fraction, Gen.Int[0, 7], HeaderBias, (p, bit, hd) => (Mutation)new BitFlip(p, bit, hd))),
        (2, Gen.Select(Fraction, Gen.OneOf<byte>(0, 1, 0x7f, 0x80, 0xff, (byte)'{', (byte)'"', (byte)'[', (byte)'-', (byte)'9', (byte)'\\'),
            HeaderBias, (p, v, hd) => (Mutation)new SetByte(p, v, hd))),
        (4, Gen.Select(Fraction, Gen.OneOf(2, 4, 8), Gen.Int[0, 1000], Gen.Bool, HeaderBias,
            (p, w, v, be, hd) => (Mutation)new SetInteger(p, w, v, be, hd))),
        (2, Fraction.Select(k => (Mutation)new Truncate(k))),
        (1, Gen.Select(Fraction, Gen.Int[1, 64], HeaderBias, (p, n, hd) => (Mutation)new DeleteRange(p, n, hd))),
        (1, Gen.Select(Fraction, Gen.Byte.Array[1, 16], HeaderBias, (p, x, hd) => (Mutation)new InsertBytes(p, x, hd))),
        (1, Gen.Select(Fraction, Gen.Int[1, 4096], (p, n) => (Mutation)new DuplicateRange(p, n))),
        (1, Gen.Select(Gen.Int[0, 1000], Fraction, Fraction, (o, c, oc) => (Mutation)new Splice(o, c, oc))));

    /// <summary>A seed with 1–6 edits. <paramref name="headerBytes"/>: how far the header-biased edits reach.</summary>
    public static Gen<byte[]> Mutated(byte[][] seeds, int headerBytes, Func<byte[], byte[]>? post = null) =>
        Gen.Select(Gen.Int[0, seeds.Length - 1], AnyMutation.Array[1, 6], (i, ms) =>
        {
            var b = seeds[i];
            foreach (var m in ms) b = m.Apply(b, seeds, headerBytes);
            return post is null ? b : post(b);
        });

    /// <summary>Random bytes (0–4 KiB).</summary>
    public static readonly Gen<byte[]> RandomBytes = Gen.Byte.Array[0, 4096];

    /// <summary>Gzip of the given bytes (for mutating what is inside a gzip file).</summary>
    public static byte[] Gzip(byte[] content)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(content);
        return ms.ToArray();
    }

    public static byte[] Gunzip(byte[] gz)
    {
        using var src = new GZipStream(new MemoryStream(gz), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        src.CopyTo(ms);
        return ms.ToArray();
    }

    // ---- JSON-aware mutation: values replaced by extremes and wrong types, keys removed, duplicated or nested ----

    /// <summary>Values that break JSON readers and validators: extremes, wrong types, nulls, deep nesting.</summary>
    public static readonly string[] JsonValues =
    [
        "null", "0", "-1", "1", "2", "3", "-0", "0.5", "1e308", "-1e308", "1e-320", "2147483647", "2147483648", "-2147483649",
        "9223372036854775807", "9223372036854775808", "18446744073709551615", "100000", "1e6", "4.0", "true", "false",
        "\"\"", "\"x\"", "\"NaN\"", "\"Infinity\"", "\"-1\"", "\"1e400\"", "\"F32\"", "\"U8\"", "\"Pgd\"", "\"None\"", "\"Bpda\"",
        "\"\\u0000\"", "[]", "[0]", "[-1]", "[2147483648]", "[1,2,3]", "[null]", "{}", "{\"a\":1}", "[[[[[[[[]]]]]]]]",
        new string('[', 80) + new string(']', 80), "\"" + new string('x', 300) + "\"", "99", "17", "42", "1.5e2", "-5",
    ];

    /// <summary>Edits a JSON document: a value replaced, a key removed or renamed, a key duplicated (as text).</summary>
    public static string MutateJson(string json, int pick, int valueIndex, int action)
    {
        // A document the editor cannot walk (duplicate keys, too deep) is left as it is.
        try { return Edit(json, pick, valueIndex, action); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.Text.Json.JsonException) { return json; }
    }

    private static string Edit(string json, int pick, int valueIndex, int action)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (System.Text.Json.JsonException) { return json; }
        if (root is null) return json;
        var nodes = new List<JsonNode>();
        void Walk(JsonNode n)
        {
            nodes.Add(n);
            if (n is JsonObject o) foreach (var (_, v) in o) { if (v is not null) Walk(v); }
            else if (n is JsonArray a) foreach (var v in a) { if (v is not null) Walk(v); }
        }
        Walk(root);
        var target = nodes[pick % nodes.Count];
        var value = JsonValues[valueIndex % JsonValues.Length];
        switch (action % 4)
        {
            case 0 or 1 when target.Parent is JsonObject po:
            {
                var key = po.First(kv => ReferenceEquals(kv.Value, target)).Key;
                if (action % 4 == 0) po[key] = JsonNode.Parse(value);
                else po.Remove(key);
                break;
            }
            case 0 or 1 when target.Parent is JsonArray pa:
            {
                int i = pa.IndexOf(target);
                if (action % 4 == 0) pa[i] = JsonNode.Parse(value);
                else pa.RemoveAt(i);
                break;
            }
            case 2 when target is JsonObject obj && obj.Count > 0:
            {
                // Duplicate the first key as text: System.Text.Json keeps one of them, other readers the other.
                var text = root.ToJsonString();
                var (k, v) = obj.First();
                string pair = $"{System.Text.Json.JsonSerializer.Serialize(k)}:{v?.ToJsonString() ?? "null"}";
                int at = text.IndexOf(pair, StringComparison.Ordinal);
                return at < 0 ? text : text.Insert(at, pair + ",");
            }
            case 3 when target is JsonObject obj2:
                obj2["x" + valueIndex] = JsonNode.Parse(value);
                break;
            default:
                if (target.Parent is JsonObject p2)
                {
                    var key = p2.First(kv => ReferenceEquals(kv.Value, target)).Key;
                    p2[key] = JsonNode.Parse(value);
                }
                break;
        }
        return root.ToJsonString();
    }

    public static readonly Gen<(int Pick, int Value, int Action)> JsonEdit =
        Gen.Select(Gen.Int[0, 10_000], Gen.Int[0, 10_000], Gen.Int[0, 3]);

    /// <summary>1–4 JSON edits of a seed document (UTF-8), optionally followed by byte-level edits.</summary>
    public static Gen<byte[]> MutatedJson(byte[][] seeds) =>
        Gen.Select(Gen.Int[0, seeds.Length - 1], JsonEdit.Array[1, 4], (i, edits) =>
        {
            var s = Encoding.UTF8.GetString(seeds[i]);
            foreach (var (p, v, a) in edits) s = MutateJson(s, p, v, a);
            return Encoding.UTF8.GetBytes(s);
        });

    /// <summary>Random JSON text of bounded depth, from scratch (keys from <paramref name="keys"/>).</summary>
    public static Gen<string> RandomJson(string[] keys) => Gen.Recursive<string>((depth, inner) =>
        depth > 4
            ? Gen.OneOf(JsonValues).Select(v => v)
            : Gen.Frequency(
                (3, Gen.OneOf(JsonValues)),
                (2, Gen.Select(Gen.OneOf(keys), inner).Array[0, 6].Select(kvs =>
                    "{" + string.Join(",", kvs.Select(kv => $"\"{kv.Item1}\":{kv.Item2}")) + "}")),
                (1, inner.Array[0, 4].Select(xs => "[" + string.Join(",", xs) + "]"))));
}
