defmodule H2Flow.Req.Fields do
  @moduledoc false
  # The response fields a handler gives H2Flow.Req: names and values as binaries, checked in the
  # handler's process by the engine's own rules (RFC 9113 8.2), so that a mistake raises where
  # it was made rather than later in the connection.

  @doc "The fields as `{name, value}` binaries; raises `ArgumentError` for an invalid one."
  def normalize(headers) when headers == %{} or headers == [], do: []

  def normalize(headers) when is_map(headers) or is_list(headers) do
    fields =
      Enum.map(headers, fn {name, value} -> {header_name(name), IO.iodata_to_binary(value)} end)

    case H2Flow.Native.fields_check(fields) do
      :ok ->
        fields

      {:error, name, message} ->
        raise ArgumentError, "invalid response field #{inspect(name)}: #{message}"
    end
  end

  defp header_name(name) when is_binary(name), do: name
  defp header_name(name) when is_atom(name), do: Atom.to_string(name)
end
