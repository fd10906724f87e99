using System.Buffers.Binary;
using System.Text.Json;
using Adp.IO;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>`adp import` of NCSNv2 weights stored in half precision (BF16, F16): the values are upcast exactly to
/// float32 and the σ schedule is read from the "sigmas" tensor (and the file's stated configuration, if any).</summary>
public class HalfPrecisionImportTests
{
    /// <summary>Each tensor of a safetensors file as float32 values decoded from the raw bytes, independently of
    /// <see cref="SafeTensors"/>: BF16 is the high half of a float32, F16 is IEEE binary16.</summary>
    private static Dictionary<string, float[]> RawFloats(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, n));
        var result = new Dictionary<string, float[]>();
        foreach (var p in doc.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__"))
        {
            string dtype = p.Value.GetProperty("dtype").GetString()!;
            var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var data = bytes.AsSpan(8 + n + offs[0], offs[1] - offs[0]);
            var values = new float[data.Length / 2];
            for (int i = 0; i < values.Length; i++)
            {
                ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]);
                values[i] = dtype switch
                {
                    "BF16" => BitConverter.Int32BitsToSingle(bits << 16),
                    "F16" => (float)BitConverter.UInt16BitsToHalf(bits),
                    _ => throw new InvalidOperationException($"{p.Name}: test expects half-precision tensors, got {dtype}"),
                };
            }
            result[p.Name] = values;
        }
        return result;
    }

    private static (ScoreModelConfig Config, string Stdout) ImportAndCompare(string path, string prefix)
    {
        var dir = Directory.CreateTempSubdirectory("adp-half-").FullName;
        var ckpt = Path.Combine(dir, "x.ckpt");
        var (code, stdout, err) = CliErrorTests.RunAdp("import", "--safetensors", path, "--dataset", "mnist", "--out", ckpt);
        Assert.True(code == 0, $"exit code {code}; stderr: {err}");
        var raw = RawFloats(path);
        var (net, info) = ScoreModelFile.Load(ckpt);
        using var _ = net;
        foreach (var (name, t) in net.state_dict())
        {
            Assert.Equal(ScalarType.Float32, t.dtype);
            var expected = raw[prefix + name];
            var actual = t.contiguous().data<float>().ToArray();
            Assert.True(expected.SequenceEqual(actual), $"{name}: loaded values differ from the file's, upcast");
        }
        return (info.Config, stdout);
    }

    [CasesFact]
    public void Bf16Case_ImportsWithExactValuesAndTheStatedSchedule()
    {
        var (config, _) = ImportAndCompare(TestEnvironment.CaseFile("ncsnv2-ngf2-bf16.safetensors"), "");
        // The file's BF16 sigmas round σ_L = 0.01 to 0.010009765625; its metadata states the exact schedule.
        Assert.Equal(new ScoreModelConfig(1, 28, 2, 1.0, 0.01, 10), config);
    }

    [Fact]
    public void F16Weights_ImportWithExactValuesAndTheSchedulesOfTheirSigmas()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-f16-").FullName, "f16.safetensors");
        using var net = new Ncsnv2(new ScoreModelConfig(1, 28, 2, 1.0, 0.01, 10));
        var schedule = new ScoreModelConfig(1, 28, 2, 2.0, 0.02, 6).Sigmas().Select(s => (float)s).ToArray();
        var tensors = net.state_dict()
            .Select(kv => new KeyValuePair<string, Tensor>("module." + kv.Key, kv.Value.Times(3).to(ScalarType.Float16)))
            .Append(new("module.sigmas", tensor(schedule).to(ScalarType.Float16)))
            .ToList();
        SafeTensors.Save(path, tensors);   // no stated configuration: the schedule comes from the F16 tensor alone
        var (config, stdout) = ImportAndCompare(path, "module.");
        Assert.Equal(6, config.NumLevels);
        Assert.Equal(2, config.Ngf);
        Assert.Equal((double)(float)(Half)2.0f, config.SigmaMax);
        Assert.Equal((double)(float)(Half)schedule[^1], config.SigmaMin);
        Assert.Contains("rounded to its precision", stdout.ReplaceLineEndings(" "));
    }

    private static SafeTensors.File WithSigmas(Tensor sigmas, Dictionary<string, string>? metadata = null) =>
        SafeTensors.Parse(SafeTensors.Serialize([new("begin_conv.weight", zeros(4, 1, 3, 3)), new("sigmas", sigmas)], metadata),
            "s.safetensors");

    [Fact]
    public void SigmaSchedules_AreCheckedAndPreferTheStatedExactValues()
    {
        var defaults = ScoreModelConfig.Mnist;
        // F32 levels: used as they are.
        using (var f = WithSigmas(tensor(new[] { 1f, 0.1f, 0.01f })))
            Assert.Equal(defaults with { Ngf = 4, SigmaMax = 1, SigmaMin = (double)0.01f, NumLevels = 3 },
                ScoreModelFile.ReadPyTorchConfig(f, defaults).Config);
        // BF16 levels with a stated configuration that agrees: the stated exact values.
        var stated = new Dictionary<string, string>
        {
            ["config"] = JsonSerializer.Serialize(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3)),
        };
        using (var f = WithSigmas(tensor(new[] { 1f, 0.1f, 0.01f }).to(ScalarType.BFloat16), stated))
        {
            var (config, note) = ScoreModelFile.ReadPyTorchConfig(f, defaults);
            Assert.Equal((1.0, 0.01, 3), (config.SigmaMax, config.SigmaMin, config.NumLevels));
            Assert.Null(note);
        }
        // A stated configuration that disagrees with the tensor loses to the tensor.
        using (var f = WithSigmas(tensor(new[] { 2.0, 0.2, 0.02 }), stated))
        {
            var config = ScoreModelFile.ReadPyTorchConfig(f, defaults).Config;
            Assert.Equal((2.0, 0.02, 3), (config.SigmaMax, config.SigmaMin, config.NumLevels));
        }
        // Not geometric, not decreasing, not positive, not floating point, not 1-D: one-line errors.
        (Tensor Sigmas, string Message)[] bad =
        [
            (tensor(new[] { 1f, 0.5f, 0.01f }), "not geometric"), (tensor(new[] { 0.01f, 0.1f, 1f }), "decreasing"),
            (tensor(new[] { 1f, 0f }), "positive"), (tensor(new[] { 1f, float.NaN }), "finite"),
            (tensor(new long[] { 4, 2, 1 }), "must be floating point"), (ones(2, 2), "1-D"),
        ];
        foreach (var (sigmas, message) in bad)
        {
            using var f = WithSigmas(sigmas);
            var e = Assert.Throws<AdpException>(() => ScoreModelFile.ReadPyTorchConfig(f, defaults));
            Assert.Contains("s.safetensors: tensor 'sigmas'", e.Message);
            Assert.Contains(message, e.Message);
        }
    }

    [Fact]
    public void IntegerTensorsForFloatWeights_AreRefused()
    {
        using var net = new Ncsnv2(new ScoreModelConfig(1, 28, 2, 1.0, 0.01, 10));
        var source = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Int32));
        var e = Assert.Throws<AdpException>(() => StateDictLoader.Load(net, source, "", "ints.safetensors"));
        Assert.Contains("ints.safetensors", e.Message);
        Assert.Contains("is Int32, expected floating point", e.Message);
    }
}
