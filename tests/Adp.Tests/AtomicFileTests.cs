using Adp.IO;

namespace Adp.Tests;

/// <summary>Writes of checkpoints, progress and reports (<see cref="AtomicFile"/>): a failed write is one line naming the
/// file and the reason, leaves the previous version and no temporary file; temporaries of killed writers are removed.
/// (scripts/reliability/full-disk.sh does the same on a real full and a real read-only filesystem.)</summary>
public class AtomicFileTests
{
    private static string Dir() => Directory.CreateTempSubdirectory("adp-atomic-").FullName;

    [Fact]
    public void FailedWriteKeepsThePreviousVersionAndNoTemporary()
    {
        var dir = Dir();
        var path = Path.Combine(dir, "progress.json");
        AtomicFile.Write(path, "previous"u8.ToArray());
        var e = Assert.Throws<AdpException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[1000]);
            throw new IOException("No space left on device : '" + path + ".tmp1'");  // what a full disk throws mid-write
        }));
        Assert.Contains(path, e.Message);
        Assert.Contains("No space left on device", e.Message);
        Assert.DoesNotContain(" : '", e.Message);
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir));
    }

    [Fact]
    public void FolderThatCannotBeMadeIsOneLineNamingTheFile()
    {
        var dir = Dir();
        var blocker = Path.Combine(dir, "report");
        File.WriteAllText(blocker, "a file where a folder should be");
        var path = Path.Combine(blocker, "results.json");
        var e = Assert.Throws<AdpException>(() => AtomicFile.Write(path, [1, 2, 3]));
        Assert.StartsWith(path + ": cannot write", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TemporariesOfKilledWritersAreRemovedByTheNextWrite()
    {
        var dir = Dir();
        var path = Path.Combine(dir, "score.ckpt");
        int dead = 999_999_999;  // no such process
        File.WriteAllBytes(AtomicFile.TemporaryPath(path, dead), new byte[100]);
        File.WriteAllBytes(path + ".tmpnotapid", new byte[1]);     // not ours: kept
        AtomicFile.Write(path, [1]);
        Assert.False(File.Exists(AtomicFile.TemporaryPath(path, dead)));
        Assert.True(File.Exists(path + ".tmpnotapid"));
    }
}
