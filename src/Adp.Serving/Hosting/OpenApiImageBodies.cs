using Adp.Serving.Api;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Adp.Serving.Hosting;

/// <summary>Lists the image forms of the request body (image/png, image/jpeg, multipart/form-data) next to the
/// JSON form (PixelsRequest).</summary>
internal static class OpenApiImageBodies
{
    public static async Task Transform(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        if (!context.Description.ActionDescriptor.EndpointMetadata.OfType<Endpoints.RequestSizeNote>().Any()) return;
        var body = operation.RequestBody as OpenApiRequestBody ?? new OpenApiRequestBody();
        body.Required = true;
        body.Description = "The image: a PNG or JPEG file as the body, the file in the multipart field 'image', or JSON pixels in [0, 1].";
        body.Content ??= new Dictionary<string, OpenApiMediaType>();
        body.Content["application/json"] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(typeof(PixelsRequest), null, ct) };
        var binary = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
        body.Content["image/png"] = new OpenApiMediaType { Schema = binary };
        body.Content["image/jpeg"] = new OpenApiMediaType { Schema = binary };
        body.Content["multipart/form-data"] = new OpenApiMediaType
        {
            Schema = new OpenApiSchema
            {
                Type = JsonSchemaType.Object,
                Required = new HashSet<string> { "image" },
                Properties = new Dictionary<string, IOpenApiSchema>
                {
                    ["image"] = binary,
                    ["seed"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Description = "fixes the noise (default: random)" },
                },
            },
        };
        operation.RequestBody = body;
        operation.Parameters ??= [];
        operation.Parameters.Add(new OpenApiParameter
        {
            Name = "seed", In = ParameterLocation.Query, Required = false,
            Description = "fixes the noise, so the answer is reproducible (default: random; the answer reports it)",
            Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0" },
        });
        if (context.Description.RelativePath?.EndsWith("purify") == true)
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = "trajectory", In = ParameterLocation.Query, Required = false,
                Description = "true: answer JSON with the noisy start and every step as base64 PNGs",
                Schema = new OpenApiSchema { Type = JsonSchemaType.Boolean },
            });
    }
}
