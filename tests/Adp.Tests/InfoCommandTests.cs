namespace Adp.Tests;

/// <summary>`adp info` through the real executable (whose output the test redirects, as a script or log would).</summary>
public class InfoCommandTests
{
    [Fact]
    public void EmptyDataDirectory_SaysNoDataSetsFound()
    {
        var dir = Directory.CreateTempSubdirectory("adp-info-empty-").FullName;
        var (code, stdout, err) = CliErrorTests.RunAdp("info", "--data-dir", dir);
        Assert.True(code == 0, $"exit code {code}; stderr: {err}");
        Assert.Contains($"no data sets found in {dir};", stdout);
        Assert.DoesNotContain("not present", stdout);
        Assert.DoesNotContain("│ data set", stdout);   // no table of absent rows
        Assert.Contains("mnist embedded test slice", stdout);

        var missing = Path.Combine(dir, "no-such-folder");
        (code, stdout, err) = CliErrorTests.RunAdp("info", "--data-dir", missing);
        Assert.True(code == 0, $"exit code {code}; stderr: {err}");
        Assert.Contains($"no data sets found in {missing} (the folder does not exist)", stdout);
        Assert.DoesNotContain("│ data set", stdout);   // not even an empty table
    }

    [Fact]
    public void RedirectedOutput_TablesAreNotWrappedAt80Columns()
    {
        // A data directory whose path alone is longer than 80 columns must still appear on one table line.
        var dir = Path.Combine(Directory.CreateTempSubdirectory("adp-info-wide-").FullName, new string('w', 100));
        Directory.CreateDirectory(dir);
        var (code, stdout, err) = CliErrorTests.RunAdp("info", "--data-dir", dir);
        Assert.True(code == 0, $"exit code {code}; stderr: {err}");
        var line = stdout.Split('\n').FirstOrDefault(l => l.Contains("data directory"));
        Assert.NotNull(line);
        Assert.Contains(dir, line);
    }
}
