using System.Text;
using Adp.Data;
using Adp.IO;
using Adp.Models;

namespace Adp.Tests.Fuzz;

/// <summary>The committed seed corpus: every parser has seeds, and every seed is accepted by its parser (a seed that
/// is refused would only test the first check). ADP_FUZZ_WRITE_CORPUS=1 remakes the files from <see cref="SeedCorpus"/>.</summary>
[Collection("fuzz")]
public class SeedCorpusTests
{
    [Fact]
    public void WriteSeedCorpus()
    {
        if (Environment.GetEnvironmentVariable("ADP_FUZZ_WRITE_CORPUS") != "1") return;
        foreach (var (parser, make) in SeedCorpus.All)
        {
            var dir = FuzzHarness.CorpusDir(parser);
            Directory.CreateDirectory(dir);
            foreach (var (name, bytes) in make()) File.WriteAllBytes(Path.Combine(dir, name), bytes);
        }
    }

    [Fact]
    public void EverySeedIsAccepted()
    {
        var dir = FuzzHarness.TempDir("seeds-ok");
        foreach (var parser in SeedCorpus.All.Keys)
            foreach (var file in Directory.GetFiles(FuzzHarness.CorpusDir(parser)).Where(f => !f.EndsWith(".md")))
            {
                var bytes = File.ReadAllBytes(file);
                switch (parser)
                {
                    case "idx":
                        IdxReader.Read(file, Path.GetFileName(file).StartsWith("labels") ? 1 : 3);
                        break;
                    case "cifar-bin":
                    {
                        var spec = SeedCorpus.CifarSpec with
                        {
                            Files = SeedCorpus.CifarSpec.Files.Select(f => f with { Records = bytes.Length / 3073 }).ToList(),
                        };
                        var folder = Path.Combine(dir, "bin", spec.Folder);
                        Directory.CreateDirectory(folder);
                        File.WriteAllBytes(Path.Combine(folder, "test_batch.bin"), bytes);
                        DatasetLoader.Load(spec, Split.Test, Path.Combine(dir, "bin")).Dispose();
                        break;
                    }
                    case "cifar-targz":
                    {
                        var sub = Path.Combine(dir, "tgz-" + Path.GetFileName(file));
                        Directory.CreateDirectory(sub);
                        File.Copy(file, Path.Combine(sub, SeedCorpus.CifarSpec.ArchiveFileName!));
                        DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, sub).Dispose();
                        break;
                    }
                    case "safetensors":
                        SafeTensors.Load(file).Dispose();
                        break;
                    case "checkpoint":
                        if (Path.GetFileName(file).StartsWith("score"))
                        {
                            ScoreModelFile.Load(file).Net.Dispose();
                            Training.ScoreTrainer.ReadOptions(file);
                        }
                        else
                        {
                            ClassifierFile.Load(file).Net.Dispose();
                            Training.ClassifierTrainer.ReadOptions(file);
                        }
                        break;
                    case "png":
                        PngImages.Read(file, 3).Dispose();
                        break;
                    case "config-json":
                        FuzzTargets.UseConfig(file);
                        break;
                    case "attack-spec":
                        FuzzTargets.UseAttackSpec(Encoding.UTF8.GetString(bytes));
                        break;
                    default:
                        Assert.Fail($"no check for corpus {parser}");
                        break;
                }
            }
    }
}
