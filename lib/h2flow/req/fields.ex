defmodule H2Flow.Req.Fields do
  @moduledoc false
  # The response status and fields a handler gives H2Flow.Req: names and values as binaries,
  # checked in the handler's process by the engine's own rules (RFC 9113 8.2), so that a
  # mistake raises where it was made rather than later in the connection.

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

  @doc "A final status as a 3-digit binary: 1xx responses are not something a reply sends."
  def status(status) when is_integer(status) and status in 200..599,
    do: Integer.to_string(status)

  def status(<<a, b, c>> = status) when a in ?2..?5 and b in ?0..?9 and c in ?0..?9,
    do: status

  def status(<<a, b, c, " ", _reason::binary>>)
      when a in ?2..?5 and b in ?0..?9 and c in ?0..?9,
      do: <<a, b, c>>

  def status(status),
    do: raise(ArgumentError, "invalid status #{inspect(status)}: a final status is 200..599")

  @doc """
  The fields of a complete response: `content-length` added when missing, except for 204
  (RFC 9110 8.6 forbids it) and 304 (where it would have to be the length of the
  representation, not of this empty body).
  """
  def response(status, headers, body) do
    headers = normalize(headers)

    if status in ["204", "304"] or List.keymember?(headers, "content-length", 0),
      do: headers,
      else: [{"content-length", Integer.to_string(byte_size(body))} | headers]
  end

  defp header_name(name) when is_binary(name), do: name
  defp header_name(name) when is_atom(name), do: Atom.to_string(name)
end
