using System.Buffers.Binary;
using System.Text;
using Adp.IO;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>Every rule of the safetensors format is enforced: a file that breaks one is refused with one line naming
/// the file and the rule (an <see cref="AdpException"/>, exit code 2 in the CLI), never an internal error.</summary>
public class SafeTensorsValidationTests
{
    private const string Name = "bad.safetensors";

    /// <summary>8-byte length, the header as given (no padding), then the data bytes.</summary>
    private static byte[] File(string header, int dataBytes, ulong? headerLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        return bytes;
    }

    private static void AssertRefused(byte[] bytes, string rule)
    {
        var e = Assert.Throws<AdpException>(() => SafeTensors.Parse(bytes, Name).Dispose());
        Assert.StartsWith(Name + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(rule, e.Message);
    }

    private const string A = "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";

    [Theory]
    // The header itself.
    [InlineData("[1,2]", 0, "must be a JSON object")]
    [InlineData(" {}", 0, "starting with '{'")]
    [InlineData("{\"a\":", 0, "not valid UTF-8 JSON")]
    [InlineData("{\"a\":1,}", 0, "not valid UTF-8 JSON")]
    [InlineData("{" + A + "," + A + "}", 4, "key 'a' appears twice")]
    // __metadata__: an object of string → string.
    [InlineData("{\"__metadata__\":[\"x\"]}", 0, "'__metadata__' must be an object of string → string, got an array")]
    [InlineData("{\"__metadata__\":{\"step\":0}}", 0, "'__metadata__' must map strings to strings; 'step' is a number")]
    [InlineData("{\"__metadata__\":{\"k\":null}}", 0, "'k' is null")]
    [InlineData("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "'k' is an object")]
    [InlineData("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "has the key 'k' twice")]
    // An entry: exactly dtype, shape, data_offsets.
    [InlineData("{\"a\":[0,4]}", 4, "tensor 'a': entry must be an object")]
    [InlineData("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': entry lacks 'dtype'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a': entry lacks 'shape'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a': entry lacks 'data_offsets'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4, "tensor 'a': unknown key 'extra'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "key 'dtype' appears twice")]
    // dtype.
    [InlineData("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': dtype must be a string")]
    [InlineData("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': unknown dtype 'F33'")]
    [InlineData("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'f32'")]
    [InlineData("{\"a\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype U32 is not supported by adp")]
    // shape.
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape must be an array of non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "shape must be an array of non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape must be an array of non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape must be an array")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "too many elements")]
    // data_offsets: two non-negative integers [begin, end], begin ≤ end ≤ data length, matching the shape.
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.0,4.0]}}", 4, "data_offsets must be two non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4e0]}}", 4, "data_offsets must be two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "data_offsets must be two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "data_offsets must be two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "data_offsets must be two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"begin\":0}}}", 4, "data_offsets must be two")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "must have begin ≤ end")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "end past the data section (4 bytes; truncated file?)")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "span 4 bytes, but shape [2] of F32 needs 8")]
    [InlineData("{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "span 4 bytes, but shape [1] of F16 needs 2")]
    // The tensors cover the data section exactly: no overlaps, no holes, nothing left over.
    [InlineData("{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap")]
    [InlineData("{" + A + ",\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}", 4, "overlap")]
    [InlineData("{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[6,10]}}", 10,
        "bytes [4, 6] of the data section belong to no tensor")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
        "bytes [0, 4] of the data section belong to no tensor")]
    [InlineData("{" + A + "}", 8, "bytes [4, 8] at the end of the data section belong to no tensor")]
    [InlineData("{}", 1, "bytes [0, 1] at the end of the data section belong to no tensor")]
    public void MalformedHeader_IsRefusedNamingTheRule(string header, int dataBytes, string rule) =>
        AssertRefused(File(header, dataBytes), rule);

    [Fact]
    public void HeaderLength_IsCheckedBeforeAnythingIsAllocated()
    {
        // A length far beyond the 100 MB limit (and the file): refused from the 8-byte prefix alone.
        AssertRefused(File("{}", 0, headerLength: ulong.MaxValue), "exceeds the format's limit of 100000000 bytes");
        AssertRefused(File("{}", 0, headerLength: SafeTensors.MaxHeaderBytes + 1), "exceeds the format's limit");
        // Within the limit, but longer than the file.
        AssertRefused(File("{}", 0, headerLength: 1000), "header says 1000 bytes, file has 2");
        AssertRefused(new byte[5], "truncated safetensors file (5 bytes");
        AssertRefused(File("", 0), "starting with '{'");
    }

    [Fact]
    public void TensorNamesInMessages_AreOneLine()
    {
        var bytes = File("{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0);
        var e = Assert.Throws<AdpException>(() => SafeTensors.Parse(bytes, Name));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("'a\\u000ab'", e.Message);
    }

    [Fact]
    public void ValidEdgeCases_AreAccepted()
    {
        using (var f = SafeTensors.Parse(File("{}", 0), Name)) Assert.Empty(f.Tensors);
        using (var f = SafeTensors.Parse(File("{\"__metadata__\":{\"k\":\"v\"}}   ", 0), Name)) Assert.Equal("v", f.Metadata["k"]);
        // Zero-size tensors, a scalar, tensors listed out of offset order, and trailing padding of the header.
        var header = "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                     + "\"b\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[4,6]}," + A + "}  ";
        var bytes = File(header, 6);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(bytes.Length - 6), 1.5f);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(bytes.Length - 2), -7);
        using var g = SafeTensors.Parse(bytes, Name);
        Assert.Equal(new long[] { 0, 3 }, g.Get("z").shape);
        Assert.Equal(1.5f, g.Get("a").item<float>());
        Assert.Equal((short)-7, g.Get("b").item<short>());
    }

    [Fact]
    public void EveryDtype_RoundTrips()
    {
        var source = new Dictionary<string, Tensor>
        {
            ["f32"] = tensor(new[] { 1.5f, -2f }), ["f64"] = tensor(new[] { 0.1, 2.0 }),
            ["f16"] = tensor(new[] { 0.1f, 3f }).to(ScalarType.Float16), ["bf16"] = tensor(new[] { 0.1f, 3f }).to(ScalarType.BFloat16),
            ["i64"] = tensor(new[] { 1L, -2L }), ["i32"] = tensor(new[] { 1, -2 }), ["i16"] = tensor(new short[] { 1, -2 }),
            ["i8"] = tensor(new sbyte[] { 1, -2 }), ["u8"] = tensor(new byte[] { 1, 254 }), ["bool"] = tensor(new[] { true, false }),
        };
        using var f = SafeTensors.Parse(SafeTensors.Serialize(source, new Dictionary<string, string> { ["k"] = "v" }), Name);
        foreach (var (name, t) in source)
        {
            Assert.Equal(t.dtype, f.Get(name).dtype);
            Assert.True(f.Get(name).to(ScalarType.Float64).eq(t.to(ScalarType.Float64)).all().item<bool>(), name);
        }
    }

    [Fact]
    public void DamagedFiles_OnlyEverFailWithAdpException()
    {
        using var a = tensor(new[] { 1f, 2f, 3f });
        using var b = tensor(new[] { 4.0, 5.0 });
        var good = SafeTensors.Serialize([new("a", a), new("b.weight", b)], new Dictionary<string, string> { ["k"] = "v" });
        void Check(byte[] bytes)
        {
            try { SafeTensors.Parse(bytes, Name).Dispose(); }
            catch (AdpException e) { Assert.DoesNotContain('\n', e.Message); }
        }
        for (int n = 0; n < good.Length; n++) Check(good[..n]);
        var rng = new Random(7);
        for (int trial = 0; trial < 3000; trial++)
        {
            var bytes = (byte[])good.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
                bytes[rng.Next(bytes.Length)] = rng.Next(3) switch
                {
                    0 => (byte)rng.Next(256), 1 => (byte)"-.e09,[]{}\":"[rng.Next(12)], _ => 0,
                };
            Check(bytes);
        }
    }

    [CasesTheory]
    [InlineData("safetensors-metadata-number.safetensors", "'__metadata__' must map strings to strings; 'step' is a number")]
    [InlineData("safetensors-entry-without-dtype.safetensors", "tensor 'a': entry lacks 'dtype'")]
    [InlineData("safetensors-float-offsets.safetensors", "tensor 'a': data_offsets must be two non-negative integers")]
    [InlineData("safetensors-negative-offset.safetensors", "tensor 'a': data_offsets must be two non-negative integers")]
    public void CaseFiles_GiveOneLineErrorAndExitCode2(string file, string rule)
    {
        var path = TestEnvironment.CaseFile(file);
        var outPath = Path.Combine(Directory.CreateTempSubdirectory("adp-st-case-").FullName, "x.ckpt");
        var (code, _, err) = CliErrorTests.RunAdp("import", "--safetensors", path, "--dataset", "mnist", "--out", outPath);
        Assert.True(code == 2, $"exit code {code}; stderr: {err}");
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(path, err);
        Assert.Contains(rule, err);
        Assert.False(System.IO.File.Exists(outPath));
    }
}
