using System.Net;
using System.Net.Sockets;

namespace Adp.Tests.Serve;

/// <summary>`adp serve` refuses bad set-ups with the tool's convention: one line on stderr, exit code 2.</summary>
public class ServeCommandTests
{
    private static readonly string[] Models =
        ["--classifier", TestEnvironment.Model("fashion-mnist-smallcnn.ckpt"), "--score", TestEnvironment.Model("fashion-mnist-score.ckpt")];

    private static void AssertOneLineError(string[] args, params string[] phrases)
    {
        var (code, _, err) = CliErrorTests.RunAdp(args);
        Assert.True(code == 2, $"exit code {code}: {err}");
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        foreach (var p in phrases) Assert.Contains(p, err);
    }

    [Fact]
    public void BadSettingsAndMissingModels()
    {
        AssertOneLineError(["serve", .. Models, "--max-batch", "0"], "--max-batch: expected at least 1, got 0");
        AssertOneLineError(["serve", "--classifier", "no-such.ckpt", "--score", TestEnvironment.Model("fashion-mnist-score.ckpt")], "no-such.ckpt");
        AssertOneLineError(["serve", .. Models, "--preset", "nonsense"], "unknown preset 'nonsense'");
    }

    [Fact]
    public void AnAddressInUse()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        AssertOneLineError(["serve", .. Models, "--runs", "1", "--urls", $"http://127.0.0.1:{port}"], "--urls: cannot listen on", $"127.0.0.1:{port}");
    }
}
