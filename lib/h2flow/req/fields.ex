defmodule H2Flow.Req.Fields do
  @moduledoc false
  # The response fields a handler gives H2Flow.Req: names and values as binaries, checked
  # against what HTTP/2 allows (RFC 9113 8.2), in the handler's process.

  # Checked here, in the handler, so that a mistake raises where it was made (the engine
  # would refuse the same fields later, far from the handler's code).
  @doc "The fields as `{name, value}` binaries; raises `ArgumentError` for an invalid one."
  def normalize(headers) when is_map(headers) or is_list(headers) do
    Enum.map(headers, fn {name, value} ->
      name = header_name(name)
      value = IO.iodata_to_binary(value)
      check_field!(name, value)
      {name, value}
    end)
  end

  defp header_name(name) when is_binary(name), do: name
  defp header_name(name) when is_atom(name), do: Atom.to_string(name)

  @connection_specific ~w(connection proxy-connection keep-alive transfer-encoding upgrade te)

  defp check_field!(name, value) do
    cond do
      not token?(name) ->
        raise ArgumentError,
              "invalid field name #{inspect(name)}: names are lowercase tokens " <>
                "(RFC 9113 8.2, RFC 9110 5.1); pseudo-header fields are set by the server"

      name in @connection_specific ->
        raise ArgumentError,
              "connection-specific field #{inspect(name)} in an HTTP/2 response (RFC 9113 8.2.2)"

      not valid_value?(value) ->
        raise ArgumentError,
              "invalid value for #{inspect(name)}: #{inspect(value)} has NUL, CR or LF, or " <>
                "starts or ends with whitespace (RFC 9113 8.2.1)"

      true ->
        :ok
    end
  end

  defp token?(""), do: false
  defp token?(name), do: tchars?(name)

  defp tchars?(<<c, rest::binary>>)
       when c in ?a..?z or c in ?0..?9 or c in ~c"!#$%&'*+-.^_`|~",
       do: tchars?(rest)

  defp tchars?(<<>>), do: true
  defp tchars?(_), do: false

  # One pass over the bytes (String.contains?/2 with a list compiles a pattern on every call:
  # a third of the cost of a small response).
  defp valid_value?(""), do: true
  defp valid_value?(<<c, _::binary>>) when c in [?\s, ?\t], do: false

  defp valid_value?(value) do
    last = :binary.last(value)
    last != ?\s and last != ?\t and no_nul_cr_lf?(value)
  end

  defp no_nul_cr_lf?(<<c, _::binary>>) when c in [0, ?\r, ?\n], do: false
  defp no_nul_cr_lf?(<<_, rest::binary>>), do: no_nul_cr_lf?(rest)
  defp no_nul_cr_lf?(<<>>), do: true
end
