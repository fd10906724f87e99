using Adp.Cli;

namespace Adp.Tests;

public class ProgressReporterTests
{
    [Theory]
    [InlineData(0, "00:00:00")]
    [InlineData(59.4, "00:00:59")]
    [InlineData(3 * 3600 + 7 * 60 + 5, "03:07:05")]
    [InlineData(32 * 3600 + 8 * 60 + 1, "32:08:01")]  // TimeSpan's "hh" would print 08:08:01
    [InlineData(125 * 3600, "125:00:00")]
    public void Duration_KeepsWholeDaysInTheHours(double seconds, string expected) =>
        Assert.Equal(expected, ProgressReporter.Duration(TimeSpan.FromSeconds(seconds)));
}
